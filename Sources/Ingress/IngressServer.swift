import AMQP
import Admin
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import JSONPath
import Logging
import NIOCore
import Roles
import Rules
import ServiceLifecycle
import Telemetry

/// The ingress role (issue 26): `POST /hooks/<endpoint>` (or `/hooks/<endpoint>/<token>`) for tools that
/// post webhooks instead of publishing through an ESB. Each request is authenticated per endpoint, its
/// body published to `sb.in` with the endpoint as routing key (as the ingress's own broker user), and
/// answered only once the broker confirmed it:
/// - 200 `{"status":"accepted","message_id":…}`: in the pipeline;
/// - 202 `{"status":"parked","parked_id":…,"reason":…}`: content intake cannot use (not JSON, no ticket
///   id, …) is parked with its reason under that id, never refused: a sender's retry queue never stalls on it;
/// - 401 wrong credentials, 404 no such webhook, 413 body over the endpoint's max_bytes;
/// - 503 with Retry-After while the broker is unavailable (the only answer that asks for a retry).
package enum IngressServer {
    /// The ingress as services: its broker publisher (a thread) and its HTTP(S) listener. `onListening`
    /// hears the URL once the listener is bound.
    package static func build(
        config: SwitchboardConfig, logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) throws -> [any Service] {
        guard let settings = config.ingress else { throw IngressError("the configuration has no ingress section") }
        var options = try ConnectionOptions(url: settings.brokerURL, caFile: config.settings.tlsCAFile)
        options.heartbeatSeconds = config.settings.heartbeatSeconds
        let own = try Setup.brokerOptions(config)
        if options.user == own.user {
            throw IngressError(
                "ingress.broker_url uses broker user '\(options.user)', Switchboard's own (settings.broker_url): the ingress publishes "
                    + "as a user of its own, which may write to \(Contract.inboundExchange) only (Deploy/rabbitmq/users.sh ingress)")
        }
        var hooks: [String: Hook] = [:]
        for (name, endpoint) in config.endpoints {
            guard let w = endpoint.webhook else { continue }
            if !endpoint.users.isEmpty && !endpoint.users.contains(options.user) {
                logger.warning("ingress: endpoint \(name) accepts messages from \(endpoint.users.sorted()) only; intake will park what the ingress ('\(options.user)') publishes for it (add it to endpoints.\(name).users)")
            }
            hooks[name] = Hook(name: name, settings: w, auth: try WebhookAuth(w, endpoint: name))
        }
        guard let (host, port) = AdminSettings.hostPort(settings.listen) else { throw IngressError("ingress.listen '\(settings.listen)' is not host:port") }
        var appLogger = logger
        appLogger[metadataKey: "sb.role"] = "ingress"
        Readiness.shared.set("ingress-broker", ready: false, "connecting to the broker")
        Readiness.shared.set("ingress", ready: false, "starting the webhook listener")
        let publisher = ConfirmingPublisher(options: options, confirmTimeout: Double(settings.confirmTimeoutMs) / 1000, logger: appLogger)
        let handler = WebhookHandler(
            config: config, hooks: hooks, publisher: publisher, retryAfter: settings.retryAfterSeconds, logger: appLogger)
        let router = Router(context: BasicRequestContext.self)
        router.get("/health") { _, _ in handler.json(.ok, ["status": .string("ok")]) }
        router.post("/hooks/:endpoint") { request, context in
            try await handler.handle(request, endpoint: context.parameters.require("endpoint"), token: nil)
        }
        router.post("/hooks/:endpoint/:token") { request, context in
            try await handler.handle(request, endpoint: context.parameters.require("endpoint"), token: context.parameters.get("token"))
        }
        let server: HTTPServerBuilder = settings.plainHTTP ? .http1() : try .tls(.http1(), tlsConfiguration: try ServerTLS.configuration(certFile: settings.tlsCertFile, keyFile: settings.tlsKeyFile, section: "ingress"))
        let scheme = settings.plainHTTP ? "http" : "https"
        let app = Hummingbird.Application(
            router: router, server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: "switchboard-ingress"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                let shown = host == "127.0.0.1" || host == "::1" ? "localhost" : host.contains(":") ? "[\(host)]" : host
                Readiness.shared.set("ingress", ready: true, "serving webhooks at \(scheme)://\(shown):\(bound)/hooks/")
                onListening("\(scheme)://\(shown):\(bound)/")
            },
            logger: appLogger)
        let loop = RoleService(name: "ingress-publisher") { flag in
            let waker = Thread {
                while !flag.wait(until: Date().addingTimeInterval(3600)) {}
                publisher.wake()
            }
            waker.start()
            publisher.run(stop: flag)
        }
        // The publisher first: a group stops its services in reverse order, so the listener closes before it.
        return [loop, app]
    }
}

/// One endpoint's webhook.
struct Hook: Sendable {
    let name: String
    let settings: WebhookSettings
    let auth: WebhookAuth
}

/// What a request becomes: checked, published and answered.
struct WebhookHandler: Sendable {
    let config: SwitchboardConfig
    let hooks: [String: Hook]
    let publisher: ConfirmingPublisher
    let retryAfter: Int
    let logger: Logger
    /// Intake's own decision, asked in advance: what it will park, the ingress answers 202 with the parked id.
    let intake: IntakeHandler

    init(config: SwitchboardConfig, hooks: [String: Hook], publisher: ConfirmingPublisher, retryAfter: Int, logger: Logger) {
        self.config = config
        self.hooks = hooks
        self.publisher = publisher
        self.retryAfter = retryAfter
        self.logger = logger
        intake = IntakeHandler(config: config, logger: Logger(label: "switchboard.ingress.predict", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// Request headers never carried into the message: credentials.
    static let secretHeaders: Set<String> = ["authorization", "proxy-authorization", "cookie", "set-cookie"]
    /// The most request headers carried (as the message's headers, which intake keeps as data).
    static let maxHeaders = 48

    func handle(_ request: Request, endpoint name: String, token: String?) async throws -> Response {
        let started = Date()
        var request = request
        guard let hook = hooks[name] else {
            count(name: "none", "unknown_endpoint")
            return json(.notFound, ["status": .string("unknown_endpoint"), "detail": .string("no webhook is configured for endpoint '\(String(name.prefix(64)))'")])
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > hook.settings.maxBytes {
            count(name: name, "too_large")
            return tooLarge(hook)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: hook.settings.maxBytes)
        } catch is NIOTooManyBytesError {
            count(name: name, "too_large")
            return tooLarge(hook)
        }
        let body = Data(buffer: buffer)
        var signature: String?
        if case .hmac(let header, _, _, _) = hook.settings.auth, let field = HTTPField.Name(header) { signature = request.headers[field] }
        let verdict = await hook.auth.check(authorization: request.headers[.authorization], pathToken: token, signature: signature, body: body)
        if case .refused(let why) = verdict {
            count(name: name, "unauthorized")
            logger.warning("ingress: request refused", metadata: ["sb.endpoint": "\(name)", "sb.reason": "\(why)"])
            var response = json(.unauthorized, ["status": .string("unauthorized"), "detail": .string("the request is not authenticated for endpoint '\(name)' (\(hook.settings.auth.name))")])
            if case .basic = hook.settings.auth { response.headers[.wwwAuthenticate] = "Basic realm=\"switchboard\"" }
            if case .bearer = hook.settings.auth { response.headers[.wwwAuthenticate] = "Bearer" }
            return response
        } else if token != nil, hook.settings.auth.name != "url_token" {
            count(name: name, "unknown_endpoint")
            return json(.notFound, ["status": .string("unknown_endpoint"), "detail": .string("endpoint '\(name)' takes its webhook at /hooks/\(name)")])
        }
        let outgoing = message(for: request, hook: hook, body: body)
        // What intake will do with it: routed, or parked with a reason (under the id this answer names).
        let delivery = Delivery(
            deliveryTag: 0, redelivered: false, exchange: Contract.inboundExchange, routingKey: name,
            consumerTag: "sb-intake:" + name, message: outgoing.message, generation: 0)
        let verdictOfIntake = intake.route(delivery)
        switch await publisher.publish(outgoing) {
        case .unavailable(let why):
            count(name: name, "unavailable")
            var response = json(.serviceUnavailable, ["status": .string("unavailable"), "detail": .string(why)])
            response.headers[.retryAfter] = String(retryAfter)
            return response
        case .confirmed:
            Meters.seconds("switchboard_ingress_seconds", [("endpoint", name)], Date().timeIntervalSince(started))
            let messageId = outgoing.message.properties.messageId
                ?? Contract.derivedMessageId(endpoint: name, type: outgoing.message.properties.type, correlationId: nil, body: body)
            if verdictOfIntake.exchange.isEmpty, verdictOfIntake.routingKey == Contract.parkedQueue {
                count(name: name, "parked")
                let headers = verdictOfIntake.message.properties.headers
                return json(.accepted, [
                    "status": .string("parked"), "parked_id": .string(headers[Contract.Header.parkedId]?.description ?? ""),
                    "message_id": .string(messageId), "reason": .string(headers[Contract.Header.reason]?.description ?? ""),
                ])
            }
            count(name: name, "accepted")
            return json(.ok, ["status": .string("accepted"), "message_id": .string(messageId)])
        }
    }

    /// The message an ESB would have published for this request: the body as it came, the delivery id as
    /// message_id, the request's headers (without credentials) as data, the ingress's user as user_id.
    func message(for request: Request, hook: Hook, body: Data) -> Outgoing {
        var headers: [String: FieldValue] = [:]
        var signatureHeader: String?
        if case .hmac(let header, _, _, _) = hook.settings.auth { signatureHeader = header.lowercased() }
        for field in request.headers where headers.count < Self.maxHeaders {
            let name = field.name.canonicalName
            if Self.secretHeaders.contains(name) || name == signatureHeader { continue }
            headers["http-" + name] = .string(String(field.value.prefix(1024)))
        }
        headers["http-method"] = .string(request.method.rawValue)
        headers["http-path"] = .string(String(request.uri.path.prefix(256)))
        // The parked id this answer names if intake parks it; a retried delivery (same id, same body) keeps it:
        // one parked row however often the sender retries.
        var deliveryId: String?
        if let h = hook.settings.deliveryIdHeader, let field = HTTPField.Name(h), let v = request.headers[field]?.trimmingCharacters(in: .whitespaces), !v.isEmpty {
            deliveryId = String(v.prefix(256))
        }
        let parkedId: String
        if let deliveryId {
            var h = Hash.FNV64()
            h.add(hook.name)
            h.add([0])
            h.add(deliveryId)
            h.add([0])
            h.add(body)
            parkedId = MessageIds.hex(h.value)
        } else {
            parkedId = MessageIds.hex(UInt64.random(in: .min ... .max))
        }
        headers[Contract.Header.ingressId] = .string(parkedId)
        let props = Properties(
            contentType: request.headers[.contentType].map { String($0.prefix(128)) }, messageId: deliveryId,
            appId: "switchboard-ingress", userId: publisher.user, timestamp: UInt64(Date().timeIntervalSince1970),
            persistent: true, headers: headers)
        return Outgoing(exchange: Contract.inboundExchange, routingKey: hook.name, message: Message(body: body, properties: props))
    }

    func tooLarge(_ hook: Hook) -> Response {
        json(.contentTooLarge, ["status": .string("too_large"), "detail": .string("the body is over \(hook.settings.maxBytes) bytes (endpoints.\(hook.name).webhook.max_bytes)")])
    }

    func count(name: String, _ outcome: String) {
        Meters.count("switchboard_ingress_requests_total", [("endpoint", name), ("outcome", outcome)])
    }

    func json(_ status: HTTPResponse.Status, _ fields: [String: JSON]) -> Response {
        var response = Response(status: status, body: .init(byteBuffer: ByteBuffer(data: JSON.object(fields).serialized())))
        response.headers[.contentType] = "application/json"
        response.headers[.cacheControl] = "no-store"
        return response
    }
}
