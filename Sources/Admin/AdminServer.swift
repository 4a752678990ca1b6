import AMQP
import Foundation
import Hummingbird
import HummingbirdAuth
import HummingbirdCore
import HummingbirdTLS
import Logging
import Mustache
import NIOCore
import NIOSSL
import Rules
import ServiceLifecycle
import Store
import Roles

/// Everything the routes share.
struct AdminServices: Sendable {
    let config: SwitchboardConfig
    let settings: AdminSettings
    let store: any AdminStore
    let queueStates: QueueStates
    let management: Management
    let jobs: ParkedJobs
    let accounts: Accounts
    /// The endpoints page's charts of the last hour (`HistorySampler` fills them).
    let history: EndpointHistory
    let limiter = SignInLimiter()
    let logger: Logger
    /// The broker user Switchboard publishes as: what tells our parking from anyone else's.
    var switchboardUser: String { jobs.actions.options.user }
}

/// The administrator's view as a service: the web UI and the JSON API on one HTTPS listener.
package enum AdminServer {
    /// Builds the server for `switchboard run` and `switchboard admin` (and the tests, with port 0).
    /// `onListening` hears the URL once the listener is bound.
    package static func build(
        config: SwitchboardConfig, store: any AdminStore, logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) throws -> any Service {
        let services = try services(config: config, store: store, logger: logger)
        let settings = services.settings
        guard let (host, port) = AdminSettings.hostPort(settings.listen) else { throw AdminError("admin.listen '\(settings.listen)' is not host:port") }
        let scheme = settings.plainHTTP ? "http" : "https"
        let server: HTTPServerBuilder
        if settings.plainHTTP {
            server = .http1()
        } else {
            server = try .tls(.http1(), tlsConfiguration: try tls(settings))
        }
        var appLogger = logger
        appLogger[metadataKey: "sb.role"] = "admin"
        return Hummingbird.Application(
            router: router(services), server: server,
            configuration: .init(address: .hostname(host, port: port), serverName: "switchboard"),
            // Before the server in the application's group, so they stop after it: no job starts once the
            // listener is closing, and the running ones end cleanly.
            services: [services.jobs, HistorySampler(services: services)],
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                // The local certificate (Deploy/local) is for localhost: show the name a browser can verify.
                let shown = host == "127.0.0.1" || host == "::1" ? "localhost" : host.contains(":") ? "[\(host)]" : host
                onListening("\(scheme)://\(shown):\(bound)/")
            },
            logger: appLogger)
    }

    /// What the routes share, from the configuration's admin section.
    static func services(config: SwitchboardConfig, store: any AdminStore, logger: Logger) throws -> AdminServices {
        guard let settings = config.admin else { throw AdminError("the configuration has no admin section") }
        let options = try Setup.brokerOptions(config)
        if settings.users.allSatisfy({ $0.passwordHash.isEmpty }) && settings.tokens.isEmpty {
            logger.warning("admin: no user has a password hash and no token is configured: nobody can sign in")
        }
        return AdminServices(
            config: config, settings: settings, store: store,
            queueStates: QueueStates(options: options, logger: logger), management: Management(url: settings.managementURL, broker: options),
            jobs: ParkedJobs(actions: ParkedActions(store: store, options: options, logger: logger)), accounts: Accounts(settings),
            history: EndpointHistory(intervalMs: settings.chartIntervalMs), logger: logger)
    }

    /// Every route behind its middleware (error pages, sessions, authentication and CSRF): served by
    /// `build`'s listener, and in process by the route tests.
    static func router(_ services: AdminServices) -> Router<AdminContext> {
        let settings = services.settings
        let router = Router(context: AdminContext.self)
        router.add(middleware: ErrorPages())
        router.add(middleware: SessionMiddleware(
            storage: MemoryPersistDriver(),
            configuration: .init(
                // Secure even on plain HTTP: that is served only on loopback behind a TLS proxy, so the
                // browser speaks HTTPS.
                sessionCookieParameters: .init(name: "sb_session", path: "/", secure: true, sameSite: .lax),
                keyPrefix: "sb.session.", defaultSessionExpiration: .seconds(settings.sessionMinutes * 60))))
        router.add(middleware: AuthMiddleware(accounts: services.accounts, settings: settings))
        APIRoutes(s: services).add(to: router)
        PageRoutes(s: services).add(to: router)
        return router
    }

    /// TLS 1.2 and 1.3 only, with the configured certificate chain and key.
    static func tls(_ settings: AdminSettings) throws -> TLSConfiguration {
        try ServerTLS.configuration(certFile: settings.tlsCertFile, keyFile: settings.tlsKeyFile, section: "admin")
    }
}

/// What our HTTPS listeners (the admin, the ingress) accept: TLS 1.2 and 1.3 only.
package enum ServerTLS {
    /// The server configuration from a PEM certificate chain and key; errors name `section`'s settings.
    package static func configuration(certFile: String?, keyFile: String?, section: String) throws -> TLSConfiguration {
        guard let certFile, let keyFile else {
            throw AdminError("\(section): HTTPS needs tls_cert_file and tls_key_file")
        }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certFile).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            tls.minimumTLSVersion = .tlsv12
            return tls
        } catch {
            throw AdminError("\(section): cannot load the TLS certificate \(certFile) or key \(keyFile): \(error)")
        }
    }
}

package struct AdminError: Error, CustomStringConvertible {
    package var description: String
    init(_ d: String) { description = d }
}

/// Errors as pages or JSON, never a stack trace or a bare status line: 404s and the rest of HTTPError
/// become `ProblemError`s, and anything unexpected is logged and answered 500 without its details.
struct ErrorPages: RouterMiddleware {
    typealias Context = AdminContext

    func handle(_ request: Request, context: AdminContext, next: (Request, AdminContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as ProblemError {
            return AuthMiddleware.secure(try e.response(from: request, context: context))
        } catch let e as HTTPError {
            let detail = e.status == .notFound ? "there is nothing at \(request.uri.path)" : (e.body ?? e.status.reasonPhrase)
            return AuthMiddleware.secure(try ProblemError(status: e.status, detail: detail).response(from: request, context: context))
        } catch is NIOTooManyBytesError {
            return AuthMiddleware.secure(try ProblemError(
                status: .contentTooLarge, detail: "the request body is over \(context.maxUploadSize) bytes"
            ).response(from: request, context: context))
        } catch let e as AMQPError {
            context.logger.error("admin: broker", metadata: ["sb.error": "\(e)"])
            return AuthMiddleware.secure(try ProblemError(status: .badGateway, detail: "the broker did not answer: \(e)")
                .response(from: request, context: context))
        } catch let e as StoreError {
            context.logger.error("admin: store", metadata: ["sb.error": "\(e)"])
            return AuthMiddleware.secure(try ProblemError(status: .serviceUnavailable, detail: "the store did not answer: \(e.message)")
                .response(from: request, context: context))
        } catch {
            context.logger.error("admin: request failed", metadata: ["sb.path": "\(request.uri.path)", "sb.error": "\(error)"])
            return AuthMiddleware.secure(try ProblemError(status: .internalServerError, detail: "an internal error; the log has its details")
                .response(from: request, context: context))
        }
    }
}
