import Admin
import ArgumentParser
import Foundation
import Logging
import Operations
import Rules
import ServiceLifecycle
import Store
import Roles
import Synchronization
import Wiring

@main
struct SwitchboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "An ITSM integration hub on RabbitMQ.",
        subcommands: [
            Run.self, Intake.self, Worker.self, Store.self, IngressCommand.self, Deliver.self, AdminCommand.self, ConfigCommand.self, RulesCommand.self, Timeline.self, Failed.self, Parked.self, Erase.self,
        ])
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration directory (every .yaml file in it).")
    var config: String = "Config"

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = ProcessInfo.processInfo.environment["SB_LOG_LEVEL"] ?? "info"

    /// The process's logger: lines for people, or with settings.log_format `json` one JSON object per line.
    /// Also makes swift-metrics report to Prometheus from here on (before any role records a metric).
    func logger(_ label: String, _ config: SwitchboardConfig) -> Logger {
        Ops.bootstrap()
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = config.settings.logFormat == "json"
        StatusLines.json.store(json, ordering: .relaxed)
        LoggingSystem.bootstrap { label in
            if json {
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}

/// Loads the configuration or prints every error (file:line: message) and exits 1.
func loadConfigOrExit(_ directory: String) throws -> SwitchboardConfig {
    do {
        return try Setup.loadConfig(directory: directory)
    } catch let errors as ConfigErrors {
        var err = FileHandle.standardError
        print("switchboard: the configuration in \(directory) has \(errors.errors.count) error(s):", to: &err)
        for e in errors.errors { print("  \(e)", to: &err) }
        throw ExitCode(1)
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run every role (intake, worker, store) in one process.")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try loadConfigOrExit(options.config)
        let logger = options.logger("switchboard", config)
        try await ServiceBuilder.run(.all(config), config: config, logger: logger)
    }
}

struct Intake: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run only the intake role: validate, park, and hand messages to the work partitions.",
        discussion: """
            Run as many as you like, on any machine: the live intakes share the inbound queues (one per \
            endpoint) through the store role's membership, each queue consumed by one intake at a time.
            """)

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try loadConfigOrExit(options.config)
        let logger = options.logger("switchboard", config)
        try await ServiceBuilder.run(.intakeOnly, config: config, logger: logger)
    }
}

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run only worker threads, for some or all work partitions.",
        discussion: """
            Without --partitions, the worker joins the other workers (through the store) and takes an even \
            share of the partitions; shares move when workers come and go. With --partitions, it consumes \
            exactly those. Each partition is consumed exclusively: a second worker for the same partition is \
            refused by the broker and retries until the first one leaves. Workers are stateless: they load and \
            commit conversations through the store role (`switchboard store` or `switchboard run`) over the \
            broker, so they can run on any machine.
            """)

    @OptionGroup var options: GlobalOptions

    @Option(help: "Partitions to consume, e.g. 0-3 or 0,2,4 (default: a share agreed with the other workers).") var partitions: String?
    @Option(help: "Worker threads (default: settings.workers).") var threads: Int?

    func run() async throws {
        let config = try loadConfigOrExit(options.config)
        let all = Array(0..<config.settings.partitions)
        var mine = all
        let coordinated = partitions == nil
        if let spec = partitions {
            guard let parsed = Self.parse(spec), !parsed.isEmpty, parsed.allSatisfy({ all.contains($0) }) else {
                throw ValidationError("--partitions \(spec): expected numbers or ranges within 0-\(all.count - 1), e.g. 0-3 or 0,2,4")
            }
            mine = parsed
        }
        let logger = options.logger("switchboard", config)
        try await ServiceBuilder.run(
            .workers(mine, threads: threads ?? config.settings.workers, coordinated: coordinated), config: config, logger: logger)
    }

    static func parse(_ spec: String) -> [Int]? {
        var out: [Int] = []
        for part in spec.split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            switch bounds.count {
            case 1: guard let v = bounds[0] else { return nil }; out.append(v)
            case 2: guard let a = bounds[0], let b = bounds[1], a <= b else { return nil }; out += Array(a...b)
            default: return nil
            }
        }
        return Array(Set(out)).sorted()
    }
}

struct Store: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run only the store role: own the database and serve workers' loads and commits over the broker.",
        discussion: """
            With store_url sqlite (the default) one store process serves at a time; start a second one as a \
            standby and it takes over when the first stops. With store_url postgres://... run as many as you \
            like, on any machine.
            """)

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try loadConfigOrExit(options.config)
        let logger = options.logger("switchboard", config)
        try await ServiceBuilder.run(.storeOnly, config: config, logger: logger)
    }
}

struct Deliver: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run only REST delivery: the outbound messages of endpoints with a rest section, sent to their APIs.",
        discussion: """
            Needs no store. Each endpoint's queue is consumed by one delivery process at a time (its messages stay \
            in order); more processes stand by and take over.
            """)

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try loadConfigOrExit(options.config)
        let logger = options.logger("switchboard", config)
        try await ServiceBuilder.run(.deliveryOnly, config: config, logger: logger)
    }
}

struct IngressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingress", abstract: "The webhook listener (also part of `switchboard run` when the configuration has an ingress section).",
        subcommands: [Serve.self, NewToken.self], defaultSubcommand: Serve.self)

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve", abstract: "Serve only the webhooks: POST /hooks/<endpoint>, published to sb.in.",
            discussion: """
                Needs no store: run as many as you like behind a load balancer. Each publishes as the broker user of \
                ingress.broker_url, which may write to sb.in only (Deploy/rabbitmq/users.sh ingress).
                """)

        @OptionGroup var options: GlobalOptions

        func run() async throws {
            let config = try loadConfigOrExit(options.config)
            let logger = options.logger("switchboard", config)
            guard config.ingress != nil else {
                var err = FileHandle.standardError
                print("switchboard: the configuration in \(options.config) has no ingress section", to: &err)
                throw ExitCode(1)
            }
            try await ServiceBuilder.run(.ingressOnly, config: config, logger: logger)
        }
    }

    struct NewToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new-token",
            abstract: "Make a webhook token: prints the token (give it to the sender) and its sha256 (endpoints.<name>.webhook.token_sha256).")

        func run() async throws {
            let (token, sha) = AdminPasswords.newToken()
            print("token:  \(token)")
            print("sha256: \(sha)")
        }
    }
}

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "The web UI and the JSON API (also part of `switchboard run`).",
        subcommands: [Serve.self, HashPassword.self, NewToken.self], defaultSubcommand: Serve.self)

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve", abstract: "Serve only the web UI and the API.",
            discussion: """
                With PostgreSQL, run it anywhere. With SQLite it opens the database file itself, so run it on the \
                machine of the store role (it reads beside the store's writer and writes only its audit records).
                """)

        @OptionGroup var options: GlobalOptions

        func run() async throws {
            let config = try loadConfigOrExit(options.config)
            let logger = options.logger("switchboard", config)
            guard config.admin != nil else {
                var err = FileHandle.standardError
                print("switchboard: the configuration in \(options.config) has no admin section", to: &err)
                throw ExitCode(1)
            }
            // The same builder as every role: no role of its own, the store opened for reading, the admin added.
            try await ServiceBuilder.run(.adminOnly, config: config, logger: logger)
        }
    }

    struct HashPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hash-password",
            abstract: "Read a password from standard input and print its bcrypt hash for admin.users[].password_hash.")

        @Option(help: "bcrypt cost (work factor).") var cost: Int = 12

        func run() async throws {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                var err = FileHandle.standardError
                print("switchboard: give the password on standard input, e.g. `switchboard admin hash-password < file`", to: &err)
                throw ExitCode(1)
            }
            print(AdminPasswords.hash(line, cost: cost))
        }
    }

    struct NewToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new-token",
            abstract: "Make an API token: prints the token (give it to the script) and its sha256 (put it in admin.tokens[]).")

        func run() async throws {
            let (token, sha) = AdminPasswords.newToken()
            print("token:  \(token)")
            print("sha256: \(sha)")
        }
    }
}

struct Erase: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Erase one conversation's stored contents (a data-protection request), audited.",
        discussion: """
            Found by any endpoint's ticket id. Blanks the bodies on its timeline and what its entries say of the \
            content, deletes its attributes, blanks its outbound messages' bodies and removes its tickets' parked \
            messages. What happened, when and by whom (rules, counters, ticket ids) stays.
            """)

    @Argument(help: "The endpoint whose ticket id you have.") var endpoint: String
    @Argument(help: "The ticket id at that endpoint.") var ticket: String
    @Option(help: "Why (for the audit), e.g. the request's reference.") var reason: String
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let config = try loadConfigOrExit(options.config)
        let (endpoint, ticket, reason) = (endpoint, ticket, reason)
        try await Stores.with(config, logger: options.logger("switchboard", config)) { store in
            var err = FileHandle.standardError
            guard let hit = try await store.tickets(ticket, endpoints: [endpoint]).first else {
                print("switchboard: no conversation has \(endpoint)/\(ticket)", to: &err)
                throw ExitCode(1)
            }
            guard let erased = try await store.erase(conversationId: hit.conversationId) else {
                print("switchboard: conversation \(hit.conversationId) is gone", to: &err)
                throw ExitCode(1)
            }
            let record = AdminStoreRecord.erasure(erased, conversationId: hit.conversationId, who: Parked.who, reason: reason)
            try await store.append(audit: record)
            print("switchboard: conversation \(hit.conversationId): \(record.detail)")
        }
    }
}

struct Timeline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a conversation: its tickets, attributes, counters and timeline.",
        discussion: "Find it by any endpoint's ticket id, e.g. `switchboard timeline customer-a INC0010001`.")

    @Argument(help: "The endpoint whose ticket id you have.") var endpoint: String
    @Argument(help: "The ticket id at that endpoint.") var ticket: String
    @Option(name: .long, help: "Configuration directory (for the store's location).") var config: String = "Config"

    func run() async throws {
        let cfg = try loadConfigOrExit(config)
        guard let text = try await Stores.describeConversation(config: cfg, endpoint: endpoint, ticket: ticket, logger: Logger(label: "switchboard")) else {
            var err = FileHandle.standardError
            print("switchboard: no conversation has \(endpoint)/\(ticket)", to: &err)
            throw ExitCode(1)
        }
        print(text)
    }
}

struct Failed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Count and list outbound messages that were refused (an error ack) with no rule to handle it.",
        discussion: "Each is also on its conversation's timeline as 'ack-unhandled', with what the ack said.")

    @Option(name: .long, help: "Configuration directory (for the store's location).") var config: String = "Config"
    @Option(help: "List at most this many, newest first.") var limit: Int = 20

    func run() async throws {
        let cfg = try loadConfigOrExit(config)
        print(try await Stores.describeFailed(config: cfg, limit: limit, logger: Logger(label: "switchboard")))
    }
}

struct Parked: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with parked messages (kept in the store; they arrive through queue sb.parked).",
        subcommands: [List.self, Replay.self, Discard.self])

    /// Who acts, for the audit.
    static var who: String { "cli:" + (ProcessInfo.processInfo.environment["USER"] ?? "unknown") }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List parked messages, oldest first.")

        @OptionGroup var options: GlobalOptions
        @Option(help: "Only this reason group (as `list` prints it).") var group: String?
        @Option(help: "List at most this many.") var limit: Int = 100
        @Flag(help: "One JSON object per line (with each message's headers and its whole body).") var json = false

        func run() async throws {
            let config = try loadConfigOrExit(options.config)
            let logger = options.logger("switchboard", config)
            let user = try Setup.brokerOptions(config).user
            let query = ParkedQuery(group: group, limit: limit, excerpt: json ? nil : ParkedMessage.excerptBytes)
            let (counts, rows) = try await Stores.with(config, logger: logger) { store in
                (try await store.parkedCounts(), try await store.parked(query))
            }
            if !json { print("\(counts.total) parked message(s)") }
            for row in rows {
                let m = ParkedMessage(row: row, switchboardUser: user)
                if json {
                    print(m.lineJSON)
                } else {
                    print("  \(m.parkedAt)  \(m.id)  \(m.endpoint ?? "-")/\(m.ticket ?? "-")  \(m.messageId ?? "(no id)")  [\(m.stage)] \(m.reason)")
                }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish parked messages again where they were first published, after fixing the cause.",
            discussion: """
                Oldest first, so each ticket's messages go again in the order they were parked. A message that fails \
                again is parked again with the new reason. Nothing is removed before its replay is confirmed; every \
                message is recorded in the audit.
                """)

        @OptionGroup var options: GlobalOptions
        @Option(help: "Replay at most this many (default: every message parked now).") var limit: Int?
        @Option(name: .customLong("id"), help: "Only these parked messages (repeat the option).") var ids: [String] = []
        @Option(help: "Why (for the audit).") var reason: String = "replayed from the command line"

        func run() async throws {
            try await act(replay: true, options: options, ids: ids, limit: limit, reason: reason)
        }
    }

    struct Discard: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove chosen parked messages (recorded in the audit).")

        @OptionGroup var options: GlobalOptions
        @Option(name: .customLong("id"), help: "The parked messages to remove (repeat the option).") var ids: [String]
        @Option(help: "Why (for the audit).") var reason: String

        func run() async throws {
            try await act(replay: false, options: options, ids: ids, limit: nil, reason: reason)
        }
    }

    static func act(replay: Bool, options: GlobalOptions, ids: [String], limit: Int?, reason: String) async throws {
        let config = try loadConfigOrExit(options.config)
        let logger = options.logger("switchboard", config)
        let broker = try Setup.brokerOptions(config)
        let counts = Counts()
        try await Stores.with(config, logger: logger) { store in
            let actions = ParkedActions(store: store, options: broker, logger: logger)
            try await actions.run(replay: replay, ids: ids.isEmpty ? nil : ids, limit: limit ?? .max, who: who, reason: reason) { m, outcome, detail in
                counts.add(outcome)
                if outcome == .failed { print("switchboard: \(m.id) (\(m.messageId ?? "no id")): \(detail)") }
                return true
            }
        }
        print("switchboard: \(replay ? "replayed" : "discarded") \(counts.done) parked message(s)\(counts.failed > 0 ? ", \(counts.failed) failed (still parked)" : "")")
        if counts.failed > 0 { throw ExitCode(1) }
    }

    final class Counts: Sendable {
        private let state = Mutex((done: 0, failed: 0))
        func add(_ o: ParkedOutcome) { state.withLock { if o == .failed { $0.failed += 1 } else { $0.done += 1 } } }
        var done: Int { state.withLock { $0.done } }
        var failed: Int { state.withLock { $0.failed } }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with the configuration.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a configuration directory and print every error; lint it and run its rule tests.")

        @Argument(help: "Configuration directory.")
        var directory: String = "Config"

        func run() async throws {
            let config = try loadConfigOrExit(directory)
            print("switchboard: \(directory) is valid: \(config.endpoints.count) endpoint(s), \(config.rules.count) rule(s), \(config.retries.count) retry polic(ies), \(config.translations.count) translation table(s)")
            // Lint (errors fail, warnings are printed) and the rule tests beside it (*_test.yaml): a
            // configuration with a rule that can never match, or whose own tests fail, is not valid.
            let lintFailed = lintFails(config, strict: false)
            if try runRuleTests(directory, config: config).contains(where: { !$0.passed }) || lintFailed { throw ExitCode(1) }
        }
    }
}

extension FileHandle: @retroactive TextOutputStream {
    public func write(_ string: String) {
        self.write(Data(string.utf8))
    }
}
