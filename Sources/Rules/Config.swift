import Foundation
import JSONPath

// One file (about 430 lines), on purpose: the configuration model, every type a configuration file
// becomes, read in one place; the loading and its checks are in ConfigLoader*.swift.

/// Where a piece of configuration came from, for error messages an operator can act on.
package struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    package var file: String
    package var line: Int
    package var column: Int

    package init(file: String, line: Int, column: Int = 0) {
        self.file = file
        self.line = line
        self.column = column
    }

    package var description: String { "\(file):\(line)" }
}

package struct ConfigError: Error, Sendable, CustomStringConvertible, Hashable {
    package var location: SourceLocation
    package var message: String

    package init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    package var description: String { "\(location): \(message)" }
}

/// Every problem found in a configuration, in file and line order.
package struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    package var errors: [ConfigError]
    package init(errors: [ConfigError]) { self.errors = errors }
    package var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// The whole validated configuration. Immutable once loaded; shared by every role.
package struct SwitchboardConfig: Sendable {
    package var settings: Settings
    package var endpoints: [String: EndpointConfig]
    package var translations: [String: TranslationTable]
    /// In evaluation order: higher priority first, then the order they were written in.
    package var rules: [Rule]
    /// What to do with an endpoint's error acks (`retries:`), in the order written.
    package var retries: [RetryPolicy] = []

    /// Every distinct outbound delay and timer delay the rules use: each gets a delay queue of its own.
    package var outboundDelays: Set<Int> {
        Set(rules.flatMap { $0.sends.compactMap(\.delayMs) } + retries.flatMap { $0.giveUp.compactMap(\.delayMs) })
            .union(endpoints.values.contains { $0.rest != nil } ? RestSettings.waitBuckets : [])
    }
    package var timerDelays: Set<Int> {
        Set(rules.flatMap { $0.schedules.map(\.afterMs) }).union(retries.flatMap(\.possibleDelays))
    }

    package var endpointNames: [String] { endpoints.keys.sorted() }
    /// The web UI and API (`admin:`); nil when the configuration has no admin section.
    package var admin: AdminSettings?
    /// The webhook listener (`ingress:`); nil when the configuration has no ingress section.
    package var ingress: IngressSettings?
    /// Where the configuration came from, for the administrator's configuration page.
    package var source = ConfigSource()

    package init(
        settings: Settings, endpoints: [String: EndpointConfig], translations: [String: TranslationTable], rules: [Rule],
        admin: AdminSettings? = nil
    ) {
        self.settings = settings
        self.endpoints = endpoints
        self.translations = translations
        self.rules = rules
        self.admin = admin
    }
}

/// The files a configuration was loaded from, a hash of their content and when.
package struct ConfigSource: Sendable {
    package var files: [String] = []
    /// SHA-256 of every file's name and content, in order (hex).
    package var contentHash = ""
    package var loadedAt = Date(timeIntervalSince1970: 0)
    package init() {}
}

package enum AdminRole: String, Sendable, Codable, Comparable {
    /// Reads everything.
    case viewer
    /// Reads everything, replays and discards parked messages, erases a conversation's contents.
    case `operator`

    package static func < (a: AdminRole, b: AdminRole) -> Bool { a == .viewer && b == .operator }
}

package struct AdminUser: Sendable {
    package var name: String
    package var role: AdminRole
    /// bcrypt; empty: the user cannot sign in (e.g. an unset environment variable).
    package var passwordHash: String
    package var location: SourceLocation

    package init(name: String, role: AdminRole, passwordHash: String, location: SourceLocation) {
        self.name = name
        self.role = role
        self.passwordHash = passwordHash
        self.location = location
    }
}

/// A bearer token for scripts: only its SHA-256 is configured.
package struct AdminToken: Sendable {
    package var name: String
    package var role: AdminRole
    package var sha256: String
    package var location: SourceLocation

    package init(name: String, role: AdminRole, sha256: String, location: SourceLocation) {
        self.name = name
        self.role = role
        self.sha256 = sha256
        self.location = location
    }
}

package struct AdminSettings: Sendable {
    package var listen = "127.0.0.1:8443"
    package var tlsCertFile: String?
    package var tlsKeyFile: String?
    /// Plain HTTP, allowed only on a loopback address (behind a TLS-terminating proxy on the same host).
    package var plainHTTP = false
    /// RabbitMQ's management API, for queue depths and the oldest message's age. Default: the broker's
    /// host on port 15672 (15671 for amqps) with the broker's credentials.
    package var managementURL: String?
    package var sessionMinutes = 480
    /// Endpoint health: warning above this many waiting messages, or an oldest message older than this.
    package var warnDepth = 100
    package var warnAgeSeconds = 120
    /// How often the endpoints page's charts of the last hour take a sample (`chart_interval`).
    package var chartIntervalMs = 60_000
    package var users: [AdminUser] = []
    package var tokens: [AdminToken] = []
    /// Peers that are the TLS proxy in front of the admin (their addresses): a request from one of them
    /// comes from the address its `clientAddressHeader` names, and through HTTPS (HSTS is sent).
    package var trustedProxies: Set<String> = []
    /// The header a trusted proxy names the client in (the rightmost address it does not trust).
    package var clientAddressHeader = "X-Forwarded-For"
    package var location: SourceLocation

    /// The longest user name the admin takes (a longer one is refused without hashing anything).
    package static let maxUserNameLength = 128
    /// bcrypt costs the admin accepts in a password hash: enough to matter, bounded so a sign-in costs
    /// well under a second of a core.
    package static let bcryptCosts = 4...14

    package init(location: SourceLocation) { self.location = location }

    package static func hostPort(_ s: String) -> (String, Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    package static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// A textual IPv4 or IPv6 address (what a peer's address and a forwarding header hold).
    package static func isIPAddress(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 45 else { return false }
        if s.contains(":") { return s.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in p.count <= 3 && !p.isEmpty && p.allSatisfy(\.isASCII) && Int(p).map { $0 <= 255 } == true }
    }

    /// The cost a bcrypt hash was made with (`$2b$12$...`), or nil if it has none readable.
    package static func bcryptCost(_ hash: String) -> Int? {
        let parts = hash.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[2].count == 2 else { return nil }
        return Int(parts[2])
    }
}

/// `settings.loop_breaker`: more than `messages` messages (not acks, not timers) in one conversation within
/// `withinSeconds` is a loop (two tools echoing each other's writes): the next ones are parked ("loop")
/// until the window passes.
package struct LoopBreaker: Sendable, Equatable {
    package var messages = 500
    package var withinSeconds = 600
    package init() {}
    /// The conversation's counters that keep its window (`Reserved`): set by the engine, not by rules.
    package static let sinceCounter = "sb.loop.since"
    package static let countCounter = "sb.loop.count"
}

package struct Settings: Sendable {
    package var brokerURL = "amqp://guest:guest@localhost:5672/"
    /// nil: off (`loop_breaker: off`).
    package var loopBreaker: LoopBreaker? = LoopBreaker()
    package var tlsCAFile: String? = nil
    package var dataDir = ".data"
    package var maxMessageBytes = 1 << 20
    /// RabbitMQ's `max_message_size` (Deploy/rabbitmq/rabbitmq.conf: 16 MiB): the largest message an ESB
    /// can put in an inbound queue, whatever `max_message_bytes` says (intake parks larger ones, after
    /// reading them).
    package var brokerMaxMessageBytes = 16 << 20
    /// When set (> 0), the most the messages an intake holds unacknowledged may take: its prefetch per
    /// inbound queue is lowered so that every queue it consumes, each message as large as the broker
    /// allows, fits (the Kubernetes manifests set it for the intake's memory limit).
    package var intakeMemoryBytes = 0
    /// The most an ESB's header table may take (AMQP-encoded): ours ride beside it in one frame (128 KiB).
    package var maxHeaderBytes = 32 << 10
    /// Work partitions: messages of one ticket always go to the same one, so they stay in order.
    package var partitions = 8
    /// Worker threads in one `switchboard run` process; partitions are split between them.
    package var workers = 2
    package var prefetch = 200
    package var batchSize = 100
    package var heartbeatSeconds = 30
    /// `sqlite` (the file switchboard.sqlite in data_dir), `sqlite:/path/to/file`, or
    /// `postgres://user:password@host:port/database` for several store processes.
    package var storeURL = "sqlite"
    /// How long a worker waits for the store role to answer one request.
    package var storeTimeoutMs = 5000
    /// How long a loop waits for the broker to confirm a batch's messages before giving the batch back
    /// (time the broker blocks publishing under a resource alarm does not count).
    package var confirmTimeoutMs = 30_000
    /// The largest request a worker sends the store role; a batch beyond it goes in several, a single
    /// message's commit beyond it is parked (RabbitMQ refuses messages over its max_message_size).
    package var storeMaxRequestBytes = 16 << 20
    /// `switchboard run`: intake evaluates the messages of the process's own partitions where they arrive
    /// instead of passing them through `sb.work.<n>` (one broker crossing fewer). Off: always through it.
    package var fuseIntake = true
    /// SQLite's `synchronous`: `full` (default) syncs every commit to disk before anything is acked, so
    /// a power loss loses nothing acked; `normal` syncs at checkpoints only (a crash of the process loses
    /// nothing, a power loss may lose the last commits, whose inbound messages were already acked).
    package var sqliteSynchronous = "full"
    /// How long the store keeps what it keeps (days): outbound bodies, the processed ids that recognise a
    /// resend (the dedupe window), and whole conversations (references, attributes, counters, timeline)
    /// after their last change.
    package var retention = Retention()
    /// Keep each inbound message's body on its conversation's timeline (the admin view shows it); off
    /// keeps only what happened, for deployments that must not store ticket contents that long.
    package var timelineBodies = true
    /// Where this process serves `/metrics`, `/health/live` and `/health/ready` (plain HTTP): host:port,
    /// nil for the role's default port on 127.0.0.1 (`Settings.defaultMetricsPort`), `off` for none.
    package var metricsListen: String? = nil
    /// `text` (one line per event, for people) or `json` (one object per line, for log shippers).
    package var logFormat = "text"
    /// RabbitMQ's management API for the oldest messages' ages (nil: derived from broker_url).
    package var managementURL: String? = nil
    /// `classic` or `quorum`: the type of the queues that carry data (inbound, outbound, work, parked,
    /// unrouted). Delay queues are always quorum queues; in quorum mode the store's request queues are too.
    package var queueType = "classic"
    /// Quorum mode: how many deliveries a message of an inbound, outbound or work queue may have before the
    /// broker dead-letters it to `sb.parked` (declared as the queue's `x-delivery-limit`, so it does not
    /// depend on a RabbitMQ version's default; a policy's lower value still applies).
    package var deliveryLimit = 100

    /// The default metrics port per role, so that several roles on one machine do not collide.
    package static func defaultMetricsPort(role: String) -> Int {
        switch role {
        case "run": 9460
        case "store": 9461
        case "intake": 9462
        case "worker": 9463
        case "admin": 9464
        case "ingress": 9465
        case "delivery": 9466
        default: 9469
        }
    }

    package struct Retention: Sendable, Equatable {
        package var bodiesDays = 30
        package var dedupeDays = 7
        package var conversationsDays = 365
        package init() {}
    }

    package init() {}

    /// An intake's prefetch per inbound queue when it consumes `queues` of them: the configured prefetch,
    /// or fewer so that its worst case (every queue's window full of messages as large as the broker
    /// allows) fits `intakeMemoryBytes`. At least 1.
    package func intakePrefetch(queues: Int) -> Int {
        guard intakeMemoryBytes > 0 else { return prefetch }
        return max(1, min(prefetch, intakeMemoryBytes / (max(1, queues) * brokerMaxMessageBytes)))
    }
}

package struct EndpointConfig: Sendable {
    package var name: String
    package var format = "json"
    /// Where this endpoint's own ticket id is in its messages.
    package var ticketId: JSONPath
    /// Where its messages carry other endpoints' ticket ids (endpoint name -> path).
    package var references: [String: JSONPath] = [:]
    /// Who made the change, for the timeline.
    package var who: JSONPath?
    /// Where the message type is when the AMQP `type` property is absent.
    package var typeField: JSONPath?
    /// Where an ack from this endpoint carries the ticket id it created.
    package var ackKey: JSONPath?
    /// The broker users allowed to publish for this endpoint (the AMQP `user_id` property, which RabbitMQ
    /// checks against the connection's user). Empty: any user who may write to `sb.in`.
    package var users: Set<String> = []
    /// Messages waiting in its inbound or outbound queue above which ops are alerted (the metric
    /// `switchboard_endpoint_backlog_threshold`; nil: admin.warn_depth, or 1000 without an admin section).
    package var backlogThreshold: Int?
    /// Personal fields of its messages (JSONPaths): redacted in what `rules capture` writes.
    package var personal: [JSONPath] = []
    /// Its webhook, when it posts to the ingress instead of (or beside) publishing through an ESB.
    package var webhook: WebhookSettings?
    /// Its REST API, when Switchboard delivers its outbound messages itself (no ESB consumes sb.out.<name>).
    package var rest: RestSettings?
    /// Its inbound messages that are our own writes coming back (a tool's webhook fires for our writes too):
    /// a message meeting any of these is an echo, on the timeline and counted, and no rule sees it (`echo`).
    package var echo: [Condition] = []
    package var description = ""
    package var location: SourceLocation

    package init(name: String, ticketId: JSONPath, location: SourceLocation) {
        self.name = name
        self.ticketId = ticketId
        self.location = location
    }
}

package struct TranslationTable: Sendable {
    package var name: String
    package var values: [String: JSON]
    package var defaultValue: JSON?
    package var ignoreCase: Bool
    package var location: SourceLocation
    /// The values by lower-cased key, for ignore_case lookups (filled by the loader).
    package var lowercased: [String: JSON] = [:]

    /// The translation of `value`, the table's default, or nil when neither applies.
    package func translate(_ value: JSON) -> JSON? {
        guard let key = value.scalarText else { return defaultValue }
        if let hit = values[key] { return hit }
        if ignoreCase, let hit = lowercased[key.lowercased()] { return hit }
        return defaultValue
    }
}

package struct Rule: Sendable {
    package var name: String
    package var priority: Int
    /// When set, the rule matches only the firing of this timer (see `schedule`).
    package var timer: String?
    /// Source endpoints this rule listens to; empty means any.
    package var from: Set<String>
    /// Message types it matches; empty means any.
    package var types: Set<String>
    package var conditions: [Condition]
    package var drop: Bool
    package var stop: Bool
    package var sets: [AttributeWrite] = []
    package var counters: [CounterOp] = []
    package var schedules: [TimerSchedule] = []
    package var sends: [Send]
    package var location: SourceLocation
    /// What the rule is for, in the operator's words (the configuration's `description`).
    package var description = ""
}

/// Remember something in the conversation: `set: [{attribute: name, value: <mapping>, when: ...}]`.
package struct AttributeWrite: Sendable {
    package var name: String
    package var value: Mapping
    package var conditions: [Condition]
}

package struct CounterOp: Sendable {
    package enum Change: Sendable, Equatable {
        case increment(Int)
        case set(Int)
    }

    package var name: String
    package var change: Change
}

/// Come back to this conversation later: the timer fires as an event of type `timer` after `afterMs`.
package struct TimerSchedule: Sendable {
    package var name: String
    package var afterMs: Int
}

package struct Send: Sendable {
    package var to: String
    package var type: String
    package var body: Mapping
    /// Leave only after this many milliseconds (through a delay queue).
    package var delayMs: Int?
    package var location: SourceLocation
    /// Sent only when these hold (`when:`), tested like a rule's conditions.
    package var conditions: [Condition] = []
}

/// How one outbound value is made.
package indirect enum Mapping: Sendable {
    case constant(JSON)
    case field(JSONPath, Transform)
    case template(Template, Transform)
    case reference(String, Transform)
    case attribute(String, Transform)
    case counter(String)
    case object([(String, Mapping)])
    case array([Mapping])
}

/// What happens to a looked-up value: translated through a table, and a default when it is missing.
package struct Transform: Sendable {
    package var translate: String?
    package var defaultValue: JSON?

    package init(translate: String? = nil, defaultValue: JSON? = nil) {
        self.translate = translate
        self.defaultValue = defaultValue
    }
}

/// `"Ticket ${number}: ${short_description}"`, parsed once.
package struct Template: Sendable {
    package enum Part: Sendable {
        case literal(String)
        case field(JSONPath)
        case reference(String)
        case attribute(String)
        case counter(String)
        case meta(String)
    }

    package var parts: [Part]
    package var source: String
}

package indirect enum Condition: Sendable {
    case all([Condition])
    case any([Condition])
    case not(Condition)
    case test(Subject, Operator)
}

package enum Subject: Sendable {
    case field(JSONPath)
    case reference(String)
    case attribute(String)
    case counter(String)
    case meta(String)
}

package enum Operator: Sendable {
    case equals(JSON, ignoreCase: Bool)
    case oneOf([JSON], ignoreCase: Bool)
    case regex(NSRegularExpressionBox)
    case exists(Bool)
    case compare(NumericComparison, Double)
}

package enum NumericComparison: String, Sendable {
    case lt, lte, gt, gte
}

/// NSRegularExpression is immutable and thread-safe once made (Foundation documents it so).
package struct NSRegularExpressionBox: @unchecked Sendable {
    package let regex: NSRegularExpression
    package let pattern: String
}
