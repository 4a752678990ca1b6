import AMQP
import AsyncHTTPClient
import Foundation
import JSONPath
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Roles
import Rules
import Telemetry

/// The delivery role (issue 26, "REST delivery"): consumes `sb.out.<endpoint>` of every endpoint with a
/// `rest` section, one endpoint's messages in order (one consumer per queue), sends each to that endpoint's
/// API with async-http-client and publishes the answer as an ack to `sb.in`, as an ESB would: the ack rules
/// and retry policies decide what an answer means. An ok answer to a create carries the created ticket's
/// id as the ack's `key`, which links it to the conversation (no rule has to). The message is acked only
/// once its ack is confirmed: a crash in between delivers it again, and a create is then looked up by its
/// correlation value first (servicenow-table), as after a create that got no answer: never made twice.
package final class RestDeliveryHandler: BatchHandler, @unchecked Sendable {
    package let queues: [(queue: String, tag: String)]
    package var exclusive: Bool { true }
    private let targets: [String: Target]
    private let client: HTTPClient
    /// Endpoints with TLS of their own (a client certificate, a CA file) get a client of their own.
    private let clients: [String: HTTPClient]
    private let logger: Logger
    /// Per endpoint, who waits for what (`WaitBook`); touched by the delivery loop, read by `waiting`.
    private var books: [String: WaitBook]
    private let booksLock = NSLock()
    /// jira-cloud: transition ids by endpoint, project and target status (`transition(_:)`); touched by the
    /// delivery loop only.
    private var transitions: [String: String] = [:]
    /// Try-now: message id -> the newest try-now's time (`Contract.Header.tryNow`) of a copy sent at once;
    /// the waiting message of that id is dropped when it comes back. Kept an hour; delivery loop only.
    private var triedNow: [String: Int64] = [:]
    private static let tagPrefix = "sb-delivery:"
    /// The most of an answer's body kept in its ack.
    static let maxAnswerBytes = 64 << 10

    struct Target: Sendable {
        let name: String
        let rest: RestSettings
        /// The Authorization header (basic, bearer); empty with OAuth 2.0, whose header is the token's.
        let authorization: String
        var oauth: OAuthToken? = nil
    }

    /// An OAuth 2.0 client-credentials token: fetched when first needed, kept until a minute before it
    /// expires, fetched again when the API answers 401.
    final class OAuthToken: @unchecked Sendable {
        let url: String
        let basic: String
        let scope: String?
        private let lock = NSLock()
        private var token: String?
        private var expires = Date.distantPast

        init(url: String, clientId: String, secret: Data, scope: String?) {
            self.url = url
            self.scope = scope
            basic = "Basic " + Data((clientId + ":").utf8 + secret).base64EncodedString()
        }

        func cached(now: Date = Date()) -> String? {
            lock.withLock { expires > now ? token : nil }
        }

        func keep(_ token: String, seconds: Double, now: Date = Date()) {
            lock.withLock {
                self.token = token
                expires = now.addingTimeInterval(max(0, seconds - 60))
            }
        }

        func drop() { lock.withLock { expires = .distantPast } }
    }

    /// Reads every REST endpoint's secret (a missing one stops the start, naming it).
    package init(config: SwitchboardConfig, logger: Logger) throws {
        var targets: [String: Target] = [:]
        for name in config.endpointNames {
            guard let rest = config.endpoints[name]?.rest else { continue }
            let authorization: String
            var oauth: OAuthToken?
            switch rest.auth {
            case .oauth2(let url, let clientId, let source, let scope):
                let secret = try Secrets.read(source, what: "endpoints.\(name).rest's client secret")
                oauth = OAuthToken(url: url, clientId: clientId, secret: secret, scope: scope)
                authorization = ""
            case .basic(let user, let source):
                let password = try Secrets.read(source, what: "endpoints.\(name).rest's password")
                authorization = "Basic " + Data((user + ":").utf8 + password).base64EncodedString()
            case .bearer(let source):
                authorization = "Bearer " + String(decoding: try Secrets.read(source, what: "endpoints.\(name).rest's token"), as: UTF8.self)
            }
            targets[name] = Target(name: name, rest: rest, authorization: authorization, oauth: oauth)
        }
        self.targets = targets
        books = targets.mapValues { WaitBook(maxWaitMs: $0.rest.maxWaitMs) }
        queues = targets.keys.sorted().map { (Contract.outboundQueue($0), Self.tagPrefix + $0) }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        func make(_ tls: TLSConfiguration) -> HTTPClient {
            HTTPClient(
                eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                configuration: HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10))))
        }
        var own: [String: HTTPClient] = [:]
        for (name, target) in targets where target.rest.clientCertFile != nil || target.rest.caFile != nil {
            var mine = tls
            let rest = target.rest
            do {
                if let cert = rest.clientCertFile, let key = rest.clientKeyFile {
                    mine.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                    mine.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
                }
                if let ca = rest.caFile { mine.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
            } catch {
                for c in own.values { try? c.syncShutdown() }
                throw Secrets.Missing(description: "endpoints.\(name).rest: cannot read its TLS files (client_cert_file, client_key_file, ca_file): \(error)")
            }
            own[name] = make(mine)
        }
        clients = own
        client = make(tls)
        self.logger = logger
        publishGauges()
    }

    /// The endpoints it delivers, for the start-up line.
    package var endpoints: [String] { targets.keys.sorted() }

    package func shutdown() {
        try? client.syncShutdown()
        for c in clients.values { try? c.syncShutdown() }
    }

    package func handle(_ batch: [Delivery]) throws -> [Outgoing] {
        let out = batch.flatMap { d in
            let name = String(d.consumerTag.dropFirst(Self.tagPrefix.count))
            guard let target = targets[name] else {
                return [Parking.park(d, code: "unknown_endpoint", reason: "no REST endpoint '\(name)' is configured", stage: "delivery", endpoint: name)]
            }
            return deliver(d, to: target)
        }
        publishGauges(sweepingAt: Date())
        return out
    }

    /// Each endpoint's waiting tickets and circuit as gauges (from the start: 0, so an alert has a series),
    /// after letting go of what the book no longer sees when `now` is given.
    private func publishGauges(sweepingAt now: Date? = nil) {
        for name in targets.keys {
            let (tickets, open) = book(name) { b -> (Int, Bool) in
                if let now { b.sweep(now: now) }
                return (b.waitingTickets, b.circuitOpen)
            }
            Meters.gauge("switchboard_rest_waiting_tickets", [("endpoint", name)], Double(tickets))
            Meters.gauge("switchboard_rest_circuit_open", [("endpoint", name)], open ? 1 : 0)
        }
    }

    private func book<T>(_ name: String, _ body: (inout WaitBook) -> T) -> T {
        booksLock.lock()
        defer { booksLock.unlock() }
        return body(&books[name, default: WaitBook()])
    }

    /// One outbound message sent (or set to wait); its answer as the ack to publish, or the message to the
    /// delay queue it waits in (with a `waiting` ack for the conversation's timeline when it starts to wait
    /// or an answer of its own said to).
    func deliver(_ d: Delivery, to target: Target) -> [Outgoing] {
        let request = Self.request(for: d.message, target: target)
        let id = d.message.properties.messageId ?? "delivery-\(d.deliveryTag)"
        let waiting = Self.waiting(d.message)
        // Sent when a timer fired (a retry policy's resend keeps its rule's name, but its cause is the timer).
        let resend: Bool = {
            if case .string(let source)? = d.message.properties.headers[Contract.Header.sourceEndpoint] { return source == Contract.timerEndpoint }
            return false
        }()
        let tryNow: Bool
        switch tryNowPass(d, id: id) {
        case .drop:
            logger.info("delivery: a waiting message came back after an administrator sent its copy; dropped", metadata: [
                "sb.endpoint": "\(target.name)", "sb.message-id": "\(id)",
            ])
            return []
        case .now: tryNow = true
        case .plan: tryNow = false
        }
        let planned = tryNow ? WaitBook.Plan.send : book(target.name) { $0.plan(ticket: request.ticket, id: id, now: Date(), resend: resend) }
        if case .wait(let bucketMs, let reason) = planned {
            if let spent = budgetSpent(waiting, bucketMs: bucketMs, target: target) {
                let hold = book(target.name) { b -> WaitBook.Hold? in
                    b.settled(ticket: request.ticket, id: id, answered: false, now: Date())
                    return b.holdOf(ticket: request.ticket)
                }
                return [ackOutgoing(Self.gaveUpWaiting(request: request, hold: hold, reason: reason, waited: spent), d, target)]
            }
            let deferred = wait(d, target: target, bucketMs: bucketMs, reason: reason, scope: "behind", waiting: waiting)
            if waiting != nil { return [deferred] }
            let hold = book(target.name) { $0.holdOf(ticket: request.ticket) }
            return [deferred, ackOutgoing(Self.waitingAck(request: request, code: hold?.code ?? 0, scope: "behind", reason: reason, bucketMs: bucketMs, times: 1), d, target)]
        }
        let correlation = request.operation == "create" ? Self.correlation(d.message, target: target) : nil
        // Redelivered: this process (or one before it) may have sent the create and died before its ack.
        if d.redelivered, let correlation, let found = lookup(correlation, target: target) {
            return [ackOutgoing(Self.adopted(found), d, target)]
        }
        var outcome = request.editless ? Outcome.done : send(request, target: target)
        var answered = request
        if (200..<300).contains(outcome.code), let status = request.transition, let key = request.ticket {
            outcome = transition(key, to: status, target: target)
            answered.operation = "transition"
        }
        // No answer to a create: it may have been made. Look before anything sends it again.
        if outcome.code == 0, !outcome.notSent, let correlation, let found = lookup(correlation, target: target) {
            logger.notice("delivery: a create without an answer was made; adopting it", metadata: [
                "sb.endpoint": "\(target.name)", "sb.message-id": "\(d.message.properties.messageId ?? "-")", "sb.key": "\(found)",
            ])
            return [ackOutgoing(Self.adopted(found), d, target)]
        }
        if outcome.code == 0, !outcome.notSent, correlation != nil { outcome.failure = (outcome.failure ?? "") + " (looked up by its correlation value: not found)" }
        // An answer that says to wait, scoped like its limit: unless the message's wait budget is spent, it
        // waits (no ack: the rules see nothing, no attempt is used) and comes back.
        if let (scope, waitMs, reason) = Self.waitScope(outcome, request: request) {
            let planned = book(target.name) {
                $0.hold(ticket: request.ticket, id: id, scope: scope, code: outcome.code, waitMs: waitMs, reason: reason, now: Date(),
                        jitter: Double.random(in: 0..<0.25))
            }
            if case .wait(let bucketMs, let reason) = planned, budgetSpent(waiting, bucketMs: bucketMs, target: target) == nil {
                logger.info("delivery: waiting", metadata: [
                    "sb.endpoint": "\(target.name)", "sb.message-id": "\(id)", "sb.reason": "\(reason)", "sb.scope": "\(scope.rawValue)",
                    "sb.wait-ms": "\(bucketMs)",
                ])
                return [
                    wait(d, target: target, bucketMs: bucketMs, reason: reason, scope: scope.rawValue, waiting: waiting),
                    ackOutgoing(Self.waitingAck(
                        request: request, code: outcome.code, scope: scope.rawValue, reason: reason, bucketMs: bucketMs,
                        times: Int((waiting?.times ?? 0) + 1)), d, target),
                ]
            }
        }
        book(target.name) { b in
            b.settled(ticket: request.ticket, id: id, answered: !outcome.notSent, now: Date())
            guard let ticket = request.ticket else { return }
            // A refusal the rules will retry holds the ticket's later messages; the resend going through frees them.
            if target.rest.holdTicketOn.contains(outcome.code) {
                b.lock(ticket: ticket, code: outcome.code, reason: "held: \(outcome.code) \(Self.message(outcome, parsed: try? JSON.parse(outcome.body), ok: false).prefix(120))",
                       holdMs: target.rest.holdForMs, now: Date())
            } else if resend, (200..<300).contains(outcome.code) {
                b.released(ticket: ticket, now: Date())
            }
        }
        if tryNow, (200..<300).contains(outcome.code) { book(target.name) { $0.triedThrough(ticket: request.ticket) } }
        if outcome.code == 0 || outcome.code >= 300 {
            logger.warning("delivery: the API refused or did not answer", metadata: [
                "sb.endpoint": "\(target.name)", "sb.message-id": "\(d.message.properties.messageId ?? "-")", "sb.code": "\(outcome.code)",
                "sb.operation": "\(request.operation)",
            ])
        }
        return [ackOutgoing(Self.ack(outcome, request: answered, target: target), d, target)]
    }

    enum TryNowPass { case plan, now, drop }

    /// What a try-now (`Contract.Header.tryNow`) makes of a message: the copy's first pass goes now; the
    /// waiting message it stands in for (or an older copy) is dropped when it comes back; a copy that waited
    /// again, like anything else, follows the plan.
    func tryNowPass(_ d: Delivery, id: String) -> TryNowPass {
        let headers = d.message.properties.headers
        var at: Int64?
        if case .int(let v)? = headers[Contract.Header.tryNow] { at = v }
        let fresh = headers[Contract.Header.triedNow] == nil
        if let kept = triedNow[id] {
            guard let at, at >= kept else { return .drop }
            triedNow[id] = at
            return fresh ? .now : .plan
        }
        guard let at else { return .plan }
        let hourAgo = Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000
        if triedNow.count > 1_000 { triedNow = triedNow.filter { $0.value > hourAgo } }
        triedNow[id] = at
        return fresh ? .now : .plan
    }

    /// jira-cloud: moves the issue to the status named (a status or a transition name, either case): the
    /// transition is looked up (`GET …/transitions`) and cached per project and status; a cached id the
    /// issue refuses (400: another workflow or status) is looked up again once. No transition leads there
    /// and the issue is in that status already: done. Else a 409 naming the transitions there are.
    func transition(_ key: String, to status: String, target: Target) -> Outcome {
        let base = "\(target.rest.baseURL)/rest/api/3/issue/\(Self.pathSegment(key))"
        let cacheKey = "\(target.name)\u{0}\(key.split(separator: "-").first ?? "")\u{0}\(status.lowercased())"
        for attempt in 0..<2 {
            var id = attempt == 0 ? transitions[cacheKey] : nil
            if id == nil {
                let listed = send(Request(operation: "transition", method: .GET, url: base + "/transitions", body: Data()), target: target)
                guard listed.code == 200, let parsed = try? JSON.parse(listed.body), case .array(let offered)? = parsed["transitions"] else { return listed }
                let wanted = status.lowercased()
                let found = offered.first { $0["to"]?["name"]?.scalarText?.lowercased() == wanted } ?? offered.first { $0["name"]?.scalarText?.lowercased() == wanted }
                guard let found, let foundId = found["id"]?.scalarText else {
                    let current = send(Request(operation: "transition", method: .GET, url: base + "?fields=status", body: Data()), target: target)
                    if current.code == 200, let c = try? JSON.parse(current.body), c["fields"]?["status"]?["name"]?.scalarText?.lowercased() == wanted {
                        return Outcome.done
                    }
                    let names = offered.compactMap { $0["to"]?["name"]?.scalarText }.joined(separator: ", ")
                    let message = "no transition of \(key) leads to '\(status)' (there are: \(names.isEmpty ? "none" : names))"
                    return Outcome(code: 409, headers: [:], body: JSON.object(["errorMessages": .array([.string(message)])]).serialized(), failure: nil)
                }
                transitions[cacheKey] = foundId
                id = foundId
            }
            let body = JSON.object(["transition": .object(["id": .string(id ?? "")])]).serialized()
            let moved = send(Request(operation: "transition", method: .POST, url: base + "/transitions", body: body), target: target)
            if moved.code == 400, attempt == 0, transitions[cacheKey] != nil {
                transitions[cacheKey] = nil
                continue
            }
            return moved
        }
        return Outcome(code: 0, headers: [:], body: Data(), failure: "unreachable")
    }

    private func ackOutgoing(_ ack: JSON, _ d: Delivery, _ target: Target) -> Outgoing {
        let props = Properties(
            contentType: "application/json", correlationId: d.message.properties.messageId, type: Contract.ackType,
            appId: "switchboard-delivery", persistent: true)
        return Outgoing(exchange: Contract.inboundExchange, routingKey: target.name, message: Message(body: ack.serialized(), properties: props))
    }

    /// What a waiting message carries: since when it waits (ms since 1970) and how often it waited.
    static func waiting(_ message: Message) -> (since: Int64, times: Int64)? {
        guard case .int(let since)? = message.properties.headers[sinceHeader] else { return nil }
        if case .int(let times)? = message.properties.headers[timesHeader] { return (since, times) }
        return (since, 1)
    }

    static let sinceHeader = "x-sb-wait-since", timesHeader = "x-sb-waits", reasonHeader = "x-sb-wait-reason"

    /// Seconds waited when waiting `bucketMs` more would pass the endpoint's wait budget; nil while within it.
    private func budgetSpent(_ waiting: (since: Int64, times: Int64)?, bucketMs: Int, target: Target) -> Int? {
        guard let waiting else { return bucketMs > target.rest.waitBudgetMs ? 0 : nil }
        let waitedMs = Int64(Date().timeIntervalSince1970 * 1000) - waiting.since
        return waitedMs + Int64(bucketMs) > Int64(target.rest.waitBudgetMs) ? Int(waitedMs / 1000) : nil
    }

    /// The message, marked as waiting, published to the delay queue of `bucketMs` that leads back to its
    /// endpoint's outbound queue (the original is acked once that is confirmed).
    private func wait(_ d: Delivery, target: Target, bucketMs: Int, reason: String, scope: String, waiting: (since: Int64, times: Int64)?) -> Outgoing {
        var props = d.message.properties
        props.headers[Self.sinceHeader] = .int(waiting?.since ?? Int64(Date().timeIntervalSince1970 * 1000))
        props.headers[Self.timesHeader] = .int((waiting?.times ?? 0) + 1)
        props.headers[Self.reasonHeader] = .string(String(reason.prefix(200)))
        // A try-now copy that waits again is sent like any other when it comes back.
        if props.headers[Contract.Header.tryNow] != nil { props.headers[Contract.Header.triedNow] = .bool(true) }
        props.expiration = nil
        Meters.count("switchboard_rest_waits_total", [("endpoint", target.name), ("scope", scope)])
        return Outgoing(
            exchange: Contract.outboundDelayExchange(bucketMs), routingKey: target.name, message: Message(body: d.message.body, properties: props))
    }

    /// Where an answer says to wait: a per-issue 429 (Jira's `RateLimit-Reason: jira-per-issue-on-write`)
    /// holds its ticket; any other 429, or a 503 naming a Retry-After, the endpoint; no connection at all
    /// (the request was not sent) opens the circuit. nil: the answer is the rules' (an ack).
    static func waitScope(_ outcome: Outcome, request: Request) -> (WaitBook.Scope, Int?, String)? {
        let waitMs = retryAfter(outcome.headers).map { $0 * 1000 }
        if outcome.notSent { return (.circuit, nil, "circuit open: \(outcome.failure ?? "no connection")") }
        switch outcome.code {
        case 429:
            let why = outcome.headers.first(name: "ratelimit-reason") ?? ""
            if request.ticket != nil, why.lowercased().contains("per-issue") { return (.ticket, waitMs, "429 \(why)") }
            return (.endpoint, waitMs, why.isEmpty ? "429 rate limited" : "429 \(why)")
        case 503 where waitMs != nil:
            return (.endpoint, waitMs, "503 unavailable")
        default:
            return nil
        }
    }

    /// The ack that puts a wait on the conversation's timeline: status `waiting` (no rule sees it), why, its
    /// scope and when the message is tried next.
    static func waitingAck(request: Request, code: Int, scope: String, reason: String, bucketMs: Int, times: Int, now: Date = Date()) -> JSON {
        let next = now.addingTimeInterval(Double(bucketMs) / 1000)
        let formatter = ISO8601DateFormatter()
        var ack: [String: JSON] = [
            "status": .string("waiting"), "code": .number(JSONNumber(Double(code))), "operation": .string(request.operation),
            "scope": .string(scope), "reason": .string(reason), "next_attempt": .string(formatter.string(from: next)),
            "waits": .number(JSONNumber(Double(times))),
            "message": .string("\(request.operation) waits (\(scope)): \(reason); next attempt \(formatter.string(from: next))"),
        ]
        // The ticket it writes (none for a create), for the admin's list of waiting tickets.
        if let ticket = request.ticket { ack["ticket"] = .string(ticket) }
        return .object(ack)
    }

    /// The ack of a message whose wait budget is spent while a hold was on: a retryable refusal naming it.
    static func gaveUpWaiting(request: Request, hold: WaitBook.Hold?, reason: String, waited: Int) -> JSON {
        .object([
            "status": .string("error"), "code": .number(JSONNumber(Double(hold?.code ?? 0))), "operation": .string(request.operation),
            "retryable": .bool(true), "waited": .number(JSONNumber(Double(waited))),
            "message": .string("not sent: waited \(waited) s (the endpoint's wait_budget) while \(reason)"),
        ])
    }

    /// One HTTP request and its answer (code 0: none), authorized; with OAuth 2.0 a 401 fetches a new token
    /// and sends once more.
    private func send(_ request: Request, target: Target) -> Outcome {
        guard let oauth = target.oauth else { return perform(request, authorization: target.authorization, target: target) }
        for renew in [false, true] {
            if renew { oauth.drop() }
            let header: String
            if let token = oauth.cached() {
                header = "Bearer " + token
            } else {
                switch fetchToken(oauth, target: target) {
                case .failure(let refused): return refused.outcome
                case .success(let token): header = "Bearer " + token
                }
            }
            let outcome = perform(request, authorization: header, target: target)
            if outcome.code != 401 || renew { return outcome }
        }
        return Outcome(code: 0, headers: [:], body: Data(), failure: "unreachable")
    }

    struct Refused: Error { let outcome: Outcome }

    /// A client-credentials token (`grant_type=client_credentials`, the client authenticated by Basic),
    /// kept for its `expires_in` (an hour when absent). A refusal is the request's outcome: the token
    /// endpoint's code (a connection failure opens the circuit), its answer in the message.
    private func fetchToken(_ oauth: OAuthToken, target: Target) -> Result<String, Refused> {
        var form = URLComponents()
        form.queryItems = [URLQueryItem(name: "grant_type", value: "client_credentials")] + (oauth.scope.map { [URLQueryItem(name: "scope", value: $0)] } ?? [])
        let body = Data((form.percentEncodedQuery ?? "").utf8)
        let answer = perform(
            Request(operation: "token", method: .POST, url: oauth.url, body: body), authorization: oauth.basic, target: target,
            contentType: "application/x-www-form-urlencoded")
        guard answer.code == 200, let parsed = try? JSON.parse(answer.body), let token = parsed["access_token"]?.scalarText, !token.isEmpty else {
            var refused = answer
            if answer.code != 0 {
                refused.code = 401
                refused.failure = nil
                let said = String(decoding: answer.body.prefix(300), as: UTF8.self)
                refused.body = JSON.object(["errorMessages": .array([.string("the OAuth 2.0 token endpoint answered \(answer.code): \(said)")])]).serialized()
            }
            return .failure(Refused(outcome: refused))
        }
        oauth.keep(token, seconds: parsed["expires_in"]?.scalarText.flatMap(Double.init) ?? 3600)
        return .success(token)
    }

    private func perform(_ request: Request, authorization: String, target: Target, contentType: String = "application/json") -> Outcome {
        let started = Date()
        let outcome: Outcome = Self.blocking { [client = clients[target.name] ?? client] in
            do {
                var r = HTTPClientRequest(url: request.url)
                r.method = request.method
                r.headers.add(name: "Content-Type", value: contentType)
                r.headers.add(name: "Accept", value: "application/json")
                r.headers.add(name: "Authorization", value: authorization)
                r.headers.add(name: "User-Agent", value: "switchboard/\(Meters.version)")
                if request.method != .GET { r.body = .bytes(ByteBuffer(data: request.body)) }
                let response = try await client.execute(r, timeout: .milliseconds(Int64(target.rest.timeoutMs)))
                let body = try await response.body.collect(upTo: 8 << 20)
                return Outcome(code: Int(response.status.code), headers: response.headers, body: Data(buffer: body), failure: nil)
            } catch {
                return Outcome(code: 0, headers: [:], body: Data(), failure: "\(error)", notSent: Self.neverSent(error))
            }
        }
        Meters.count("switchboard_rest_requests_total", [("endpoint", target.name), ("code", String(outcome.code))])
        Meters.seconds("switchboard_rest_request_seconds", [("endpoint", target.name)], Date().timeIntervalSince(started))
        return outcome
    }

    /// The create's correlation value (servicenow-table: its `correlation_id`), when it has one.
    static func correlation(_ message: Message, target: Target) -> String? {
        switch target.rest.profile {
        case .jiraCloud:
            return jiraLabel(message)
        case .servicenowTable, .genericRest:
            guard let field = target.rest.correlationField, case .object(let o)? = try? JSON.parse(message.body) else { return nil }
            return o[field]?.scalarText.flatMap { $0.isEmpty ? nil : $0 }
        }
    }

    /// jira-cloud: the label every create carries, `sb-<conversation id>`: one conversation makes at most one
    /// issue per Jira endpoint, and JQL finds it (entity properties are not searchable without an app).
    static func jiraLabel(_ message: Message) -> String? {
        guard case .string(let conversation)? = message.properties.headers[Contract.Header.conversation],
            !conversation.isEmpty, conversation.allSatisfy({ $0.isLetter || $0.isNumber })
        else { return nil }
        return "sb-" + conversation
    }

    /// The ticket a create made, looked up by its correlation value (servicenow-table: a Table API query;
    /// jira-cloud: JQL on its label; generic-rest: `lookup_path`);
    /// nil when none is found or the lookup gets no clear answer.
    func lookup(_ correlation: String, target: Target) -> String? {
        if target.rest.profile == .jiraCloud { return jiraLookup(correlation, target: target) }
        if target.rest.profile == .genericRest {
            guard let path = target.rest.lookupPath, let key = target.rest.lookupKey else { return nil }
            let answer = send(Request(operation: "lookup", method: .GET, url: Self.lookupURL(path, correlation: correlation, target: target), body: Data()), target: target)
            guard answer.code == 200, let parsed = try? JSON.parse(answer.body), let id = key.first(parsed)?.scalarText, !id.isEmpty else { return nil }
            return id
        }
        guard target.rest.profile == .servicenowTable, let field = target.rest.correlationField else { return nil }
        var query = URLComponents()
        query.queryItems = [
            URLQueryItem(name: "sysparm_query", value: "\(field)=\(correlation)"), URLQueryItem(name: "sysparm_fields", value: "sys_id"),
            URLQueryItem(name: "sysparm_limit", value: "1"),
        ]
        let url = "\(target.rest.baseURL)/api/now/table/\(target.rest.table)?" + (query.percentEncodedQuery ?? "")
        let answer = send(Request(operation: "lookup", method: .GET, url: url, body: Data()), target: target)
        guard answer.code == 200, let parsed = try? JSON.parse(answer.body), case .array(let rows)? = parsed["result"],
            let first = rows.first, let id = first["sys_id"]?.scalarText, !id.isEmpty
        else { return nil }
        return id
    }

    /// generic-rest: the lookup's URL, the correlation value in place of `{correlation}`, percent-encoded.
    static func lookupURL(_ path: String, correlation: String, target: Target) -> String {
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        let value = correlation.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
        return target.rest.baseURL + path.replacingOccurrences(of: "{correlation}", with: value)
    }

    /// jira-cloud: the issue carrying the label, by JQL (`GET /rest/api/3/search/jql`). Jira's search index
    /// may lag a moment behind a create: not found at once, it asks once more two seconds later.
    func jiraLookup(_ label: String, target: Target) -> String? {
        var query = URLComponents()
        query.queryItems = [
            URLQueryItem(name: "jql", value: "labels = \"\(label)\""), URLQueryItem(name: "fields", value: "key"),
            URLQueryItem(name: "maxResults", value: "1"),
        ]
        let url = "\(target.rest.baseURL)/rest/api/3/search/jql?" + (query.percentEncodedQuery ?? "")
        for attempt in 0..<2 {
            if attempt > 0 { Thread.sleep(forTimeInterval: 2) }
            let answer = send(Request(operation: "lookup", method: .GET, url: url, body: Data()), target: target)
            guard answer.code == 200 else { return nil }
            if let parsed = try? JSON.parse(answer.body), case .array(let issues)? = parsed["issues"], let key = issues.first?["key"]?.scalarText,
                !key.isEmpty
            {
                return key
            }
        }
        return nil
    }

    /// The ack of a create found made: ok, with its key.
    static func adopted(_ key: String) -> JSON {
        .object([
            "status": .string("ok"), "code": .number(JSONNumber(200)), "operation": .string("create"), "retryable": .bool(false),
            "key": .string(key), "adopted": .bool(true),
            "message": .string("the create had no answer; the record it made was found by its correlation value and adopted"),
        ])
    }

    struct Request {
        var operation: String
        /// The ticket written (the reference), nil for a create.
        var ticket: String? = nil
        /// jira-cloud: the status to move the issue to after its edit (the body's `transition`).
        var transition: String? = nil
        /// Nothing to edit (only a transition): the edit request is not sent.
        var editless = false
        var method: HTTPMethod
        var url: String
        var body: Data
    }

    struct Outcome: Sendable {
        var code: Int
        var headers: HTTPHeaders
        var body: Data
        var failure: String?
        /// The request never left: no connection could be made (refused, unreachable, connect timeout).
        var notSent = false
        /// Nothing to send, the ticket is as asked already (an update with nothing but a transition, a
        /// transition to the status it has): answered like Jira's own 204.
        static let done = Outcome(code: 204, headers: [:], body: Data(), failure: nil)
    }

    /// A ticket id or key as one segment of a URL path (a `/` in it encoded too).
    static func pathSegment(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))) ?? id
    }

    /// A failure before the request was sent: the pool got no connection. (A failure after it may have
    /// reached the API: a create is then looked up, never assumed unsent.)
    static func neverSent(_ error: Error) -> Bool {
        if error is NIOConnectionError { return true }
        if let e = error as? HTTPClientError, e == .connectTimeout || e == .getConnectionFromPoolTimeout { return true }
        if let e = error as? ChannelError, case .connectTimeout = e { return true }
        if let e = error as? IOError, [ECONNREFUSED, EHOSTUNREACH, ENETUNREACH].contains(e.errnoCode) { return true }
        return false
    }

    /// What to send for an outbound message: an update of the ticket its body names (the profile's
    /// reference field), else a create; on Jira, type `comment` adds a comment (plain text wrapped in ADF).
    static func request(for message: Message, target: Target) -> Request {
        let rest = target.rest
        var fields: [String: JSON] = [:]
        if case .object(let o)? = try? JSON.parse(message.body) { fields = o }
        let reference = fields[rest.referenceField]?.scalarText.flatMap { $0.isEmpty ? nil : $0 }
        let ref = reference.map(Self.pathSegment)
        switch rest.profile {
        case .servicenowTable:
            let base = "\(rest.baseURL)/api/now/table/\(rest.table)"
            if let ref { return Request(operation: "update", ticket: reference, method: .PATCH, url: "\(base)/\(ref)", body: message.body) }
            return Request(operation: "create", method: .POST, url: base, body: message.body)
        case .jiraCloud:
            let base = "\(rest.baseURL)/rest/api/3/issue"
            if let ref {
                fields[rest.referenceField] = nil
                if message.properties.type == "comment" {
                    var comment = fields
                    if case .string(let text)? = fields["body"] { comment["body"] = adf(text) }
                    return Request(operation: "comment", ticket: reference, method: .POST, url: "\(base)/\(ref)/comment", body: JSON.object(comment).serialized())
                }
                let transition = fields.removeValue(forKey: "transition")?.scalarText.flatMap { $0.isEmpty ? nil : $0 }
                return Request(
                    operation: "update", ticket: reference, transition: transition, editless: transition != nil && fields.isEmpty,
                    method: .PUT, url: "\(base)/\(ref)", body: JSON.object(jiraStamped(fields, message: message, edit: true)).serialized())
            }
            return Request(operation: "create", method: .POST, url: base, body: JSON.object(jiraStamped(fields, message: message, edit: false)).serialized())
        case .genericRest:
            if let ref {
                return Request(
                    operation: "update", ticket: reference, method: HTTPMethod(rawValue: rest.updateMethod),
                    url: rest.baseURL + rest.updatePath.replacingOccurrences(of: "{ref}", with: ref), body: message.body)
            }
            return Request(operation: "create", method: .POST, url: rest.baseURL + rest.createPath, body: message.body)
        }
    }

    /// A Jira write stamped as ours, so its echo can be told apart: an entity property `switchboard` with the
    /// message id (create and edit), and on an edit `historyMetadata` naming Switchboard as the generator
    /// (the issue's history shows it). What the rules put there themselves is kept.
    static func jiraStamped(_ body: [String: JSON], message: Message, edit: Bool) -> [String: JSON] {
        var body = body
        let id = JSON.string(message.properties.messageId ?? "")
        // A create carries its conversation's label, by which a create with an unknown outcome is found.
        if !edit, let label = jiraLabel(message), case .object(var fields)? = body["fields"] {
            var labels: [JSON] = []
            if case .array(let existing)? = fields["labels"] { labels = existing }
            if !labels.contains(.string(label)) { labels.append(.string(label)) }
            fields["labels"] = .array(labels)
            body["fields"] = .object(fields)
        }
        if body["properties"] == nil {
            body["properties"] = .array([.object(["key": .string("switchboard"), "value": .object(["message_id": id])])])
        }
        if edit, body["historyMetadata"] == nil {
            body["historyMetadata"] = .object([
                "type": .string("switchboard"), "description": .string("Switchboard integration"),
                "generator": .object(["id": .string("switchboard"), "type": .string("switchboard")]),
                "cause": .object(["id": id, "type": .string("switchboard-message")]),
            ])
        }
        return body
    }

    /// Plain text as an Atlassian Document: one paragraph per line.
    static func adf(_ text: String) -> JSON {
        let paragraphs: [JSON] = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            .object(["type": .string("paragraph"), "content": line.isEmpty ? .array([]) : .array([.object(["type": .string("text"), "text": .string(String(line))])])])
        }
        return .object(["type": .string("doc"), "version": .number(JSONNumber(1)), "content": .array(paragraphs)])
    }

    /// Codes worth another attempt: the request may succeed later as it is.
    static let retryable: Set<Int> = [0, 408, 425, 429, 500, 502, 503, 504]

    /// The ack: `status` (ok for 2xx), `code` (0: no answer), `operation`, `retryable`, `key` (a create's new
    /// ticket), `comment_id` (a comment made), `retry_after` (seconds, from Retry-After or X-RateLimit-Reset), `message`, `headers`, `body`.
    static func ack(_ outcome: Outcome, request: Request, target: Target) -> JSON {
        let parsed = outcome.body.isEmpty ? nil : try? JSON.parse(outcome.body)
        var ok = (200..<300).contains(outcome.code)
        // The endpoint's own idea of success: a field of the answer present, or with a value.
        var unmet = false
        if ok, let success = target.rest.success {
            let found = parsed.map { success.path.select($0) } ?? []
            ok = success.equals.map { wanted in found.contains(wanted) } ?? found.contains { $0 != .null }
            unmet = !ok
        }
        var ack: [String: JSON] = [
            "status": .string(ok ? "ok" : "error"), "code": .number(JSONNumber(Double(outcome.code))), "operation": .string(request.operation),
            "retryable": .bool(!ok && !unmet && (retryable.contains(outcome.code) || target.rest.retryCodes.contains(outcome.code))),
        ]
        if ok, request.operation == "create", let parsed, let key = value(parsed, at: target.rest.keyField)?.scalarText {
            ack["key"] = .string(key)
        }
        // The comment made (Jira answers with its id): the conversation keeps it to know the comment's webhook as an echo.
        if ok, request.operation == "comment", let parsed, let id = parsed["id"]?.scalarText, !id.isEmpty {
            ack["comment_id"] = .string(id)
        }
        if let seconds = retryAfter(outcome.headers) { ack["retry_after"] = .number(JSONNumber(Double(seconds))) }
        var headers: [String: JSON] = [:]
        for name in ["retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit-reason", "location"] {
            if let v = outcome.headers.first(name: name) { headers[name] = .string(String(v.prefix(256))) }
        }
        if !headers.isEmpty { ack["headers"] = .object(headers) }
        if let parsed {
            if outcome.body.count <= maxAnswerBytes { ack["body"] = parsed }
        } else if !outcome.body.isEmpty {
            ack["body"] = .string(String(decoding: outcome.body.prefix(4096), as: UTF8.self))
        }
        ack["message"] = .string(
            unmet ? "HTTP \(outcome.code), but the answer does not meet the endpoint's success condition (\(target.rest.success?.path.source ?? ""))"
                : message(outcome, parsed: parsed, ok: ok))
        return .object(ack)
    }

    /// A line for people: the API's own error message where it gives one (ServiceNow `error.message`
    /// and `error.detail`, Jira `errorMessages`), else the status.
    static func message(_ outcome: Outcome, parsed: JSON?, ok: Bool) -> String {
        if let failure = outcome.failure { return "no answer: \(failure)" }
        if !ok, let parsed {
            if case .object(let e)? = parsed["error"] {
                return [e["message"]?.scalarText, e["detail"]?.scalarText].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            }
            if case .array(let messages)? = parsed["errorMessages"], !messages.isEmpty {
                return messages.compactMap(\.scalarText).joined(separator: "; ")
            }
        }
        return "HTTP \(outcome.code) \(HTTPResponseStatus(statusCode: outcome.code).reasonPhrase)"
    }

    /// Seconds to wait before trying again, if the answer says: Retry-After (seconds or an HTTP date), or
    /// X-RateLimit-Reset (unix seconds or ISO 8601); at most a day.
    static func retryAfter(_ headers: HTTPHeaders, now: Date = Date()) -> Int? {
        let cap = 86_400
        // The retry policy's reading of a wait (seconds, a duration, an HTTP date, ISO 8601), in whole seconds.
        func named(_ text: String) -> Int? {
            RetryPolicy.namedWaitMs(.string(text), now: now).map { min(($0 + 999) / 1000, cap) }
        }
        if let v = headers.first(name: "retry-after"), let seconds = named(v) { return seconds }
        if let v = headers.first(name: "x-ratelimit-reset")?.trimmingCharacters(in: .whitespaces) {
            // Unix seconds (ServiceNow) are a time, not a wait.
            if let unix = Double(v), unix > 1_000_000_000 {
                return min(max(0, Int(Date(timeIntervalSince1970: unix).timeIntervalSince(now).rounded(.up))), cap)
            }
            return named(v)
        }
        return nil
    }

    /// The value at a dotted path (`result.sys_id`).
    static func value(_ json: JSON, at path: String) -> JSON? {
        var current: JSON? = json
        for part in path.split(separator: ".") { current = current?[String(part)] }
        return current
    }

    /// Runs `body` and waits for it on this (role) thread: the delivery loop is a blocking loop of its
    /// own, never an event loop.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            box.value = await body()
            done.signal()
        }
        done.wait()
        return box.value!
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
