import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import HummingbirdBcrypt
import Rules
import Roles
import Synchronization

/// Who is asking: a signed-in user (session cookie) or a script (bearer token).
package struct AdminIdentity: Sendable, Equatable {
    package var name: String
    package var role: AdminRole
    package var viaToken: Bool
}

/// What the session cookie names on the server (the cookie holds only a random id).
struct AdminSession: Codable, Sendable {
    var user: String
    /// The form token of this session: every form posts it back (CSRF).
    var csrf: String
}

struct AdminContext: RequestContext, SessionRequestContext {
    var coreContext: CoreRequestContextStorage
    let sessions: SessionContext<AdminSession>
    var identity: AdminIdentity?
    var csrf: String?
    /// The peer's address without its port.
    let remoteAddress: String
    /// The client's address (behind a trusted proxy, the one it names), for rate limiting and the log.
    var client: ClientAddress

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        sessions = .init()
        remoteAddress = source.channel.remoteAddress?.ipAddress ?? "?"
        client = ClientAddress(address: remoteAddress, viaProxy: false)
    }

    /// The largest form or JSON body taken: enough for an action on 10,000 parked messages.
    var maxUploadSize: Int { 1 << 20 }
}

/// Users and tokens from the configuration, and the checks on them. Every route but `/health`, the
/// sign-in page and the static files requires one of them.
struct Accounts: Sendable {
    let users: [String: AdminUser]
    let tokens: [String: AdminToken]

    /// What an unknown user's password is checked against: a hash of the configured users' cost, so an
    /// unknown name costs as much as a known one and timing does not tell which names exist.
    let decoy: String
    let gate = BcryptGate()

    init(_ settings: AdminSettings) {
        users = Dictionary(settings.users.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        tokens = Dictionary(settings.tokens.filter { !$0.sha256.isEmpty }.map { ($0.sha256, $0) }, uniquingKeysWith: { a, _ in a })
        decoy = Self.decoy(for: settings.users)
    }

    /// The decoy hash, of the highest cost among the configured users' hashes (12, the default of
    /// `hash-password`, when there are none).
    static func decoy(for users: [AdminUser]) -> String {
        let cost = users.compactMap { AdminSettings.bcryptCost($0.passwordHash) }.max() ?? 12
        return Bcrypt.hash(Random.token(bytes: 16), cost: UInt8(clamping: min(max(cost, AdminSettings.bcryptCosts.lowerBound), AdminSettings.bcryptCosts.upperBound)))
    }

    enum Verdict { case signedIn(AdminUser), refused, busy }

    /// bcrypt's verification runs on the offload pool: it is slow on purpose and must not hold an event loop.
    /// A user name over the length limit is refused without hashing (no configured name is that long);
    /// more verifications at once than `gate` allows are answered busy.
    func verify(user name: String, password: String) async -> Verdict {
        guard name.utf8.count <= AdminSettings.maxUserNameLength, password.utf8.count <= 1024 else { return .refused }
        let user = users[name]
        let hash = user?.passwordHash.isEmpty == false ? user!.passwordHash : decoy
        guard gate.enter() else { return .busy }
        defer { gate.leave() }
        let ok = await Offload.run { Bcrypt.verify(password, hash: hash) }
        guard ok, let user, !user.passwordHash.isEmpty else { return .refused }
        return .signedIn(user)
    }

    func token(_ presented: String) -> AdminToken? {
        let digest = SHA256.hash(data: Data(presented.utf8)).map { String(format: "%02x", $0) }.joined()
        // The lookup is by digest: comparing digests leaks nothing useful about the token itself.
        return tokens[digest]
    }
}

/// Resolves the identity (bearer token or session), refuses what is not allowed, checks the CSRF token
/// of every form a session posts, and adds the headers every answer carries.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AdminContext
    let accounts: Accounts
    let settings: AdminSettings
    /// Strict-Transport-Security on every answer served over HTTPS to a browser: through a trusted TLS
    /// proxy, or our own TLS on a name that is not loopback (on localhost it would pin every local port).
    static let hsts = "max-age=31536000"
    private let hstsAlways: Bool
    private let clientAddressField: HTTPField.Name

    init(accounts: Accounts, settings: AdminSettings) {
        self.accounts = accounts
        self.settings = settings
        hstsAlways = !settings.plainHTTP && AdminSettings.hostPort(settings.listen).map { !AdminSettings.isLoopback($0.0) } == true
        // The configuration check allows only letters, digits and dashes: a valid field name.
        clientAddressField = HTTPField.Name(settings.clientAddressHeader) ?? HTTPField.Name("X-Forwarded-For")!
    }

    static func isPublic(_ path: String) -> Bool {
        path == "/health" || path == "/sign-in" || path.hasPrefix("/static/")
    }

    func handle(_ request: Request, context: AdminContext, next: (Request, AdminContext) async throws -> Response) async throws -> Response {
        var context = context
        var request = request
        let path = request.uri.path
        context.client = ClientAddress.resolve(
            peer: context.remoteAddress, forwarded: request.headers[clientAddressField], trusted: settings.trustedProxies)
        let hsts = hstsAlways || context.client.viaProxy
        let api = path.hasPrefix("/api/")
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            guard let token = accounts.token(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)) else {
                return Self.secure(Problem.response(.unauthorized, "the bearer token is not known", bearer: true))
            }
            context.identity = AdminIdentity(name: "token:\(token.name)", role: token.role, viaToken: true)
        } else if let session = context.sessions.session, let user = accounts.users[session.user], !user.passwordHash.isEmpty {
            // The role is the configuration's now, not the one at sign-in.
            context.identity = AdminIdentity(name: user.name, role: user.role, viaToken: false)
            context.csrf = session.csrf
        }
        if context.identity == nil && !Self.isPublic(path) {
            if api { return Self.secure(Problem.response(.unauthorized, "sign in first: a session cookie or an Authorization: Bearer token", bearer: true)) }
            let back = request.uri.description.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=?"))) ?? "/"
            return Self.secure(Response(status: .seeOther, headers: [.location: "/sign-in?next=\(back)"]))
        }
        if request.method == .post, let identity = context.identity, !identity.viaToken, path != "/sign-in" {
            // A session's POST must carry its form token, in the form or in X-CSRF-Token.
            var presented = request.headers[HTTPField.Name("X-CSRF-Token")!]
            if presented == nil { presented = try await Form.read(&request, context: context).first("csrf") }
            guard let presented, let expected = context.csrf, Self.constantTimeEqual(presented, expected) else {
                return Self.secure(Problem.response(.forbidden, "the form's CSRF token is missing or wrong: reload the page and try again"))
            }
        }
        var response = Self.secure(try await next(request, context))
        if hsts { response.headers[HTTPField.Name("Strict-Transport-Security")!] = Self.hsts }
        return response
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    static func secure(_ response: Response) -> Response {
        var r = response
        r.headers[.contentSecurityPolicy] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
        r.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        r.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        r.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        if r.headers[.cacheControl] == nil { r.headers[.cacheControl] = "no-store" }
        return r
    }
}

extension AdminContext {
    /// The identity, or a 403 naming the role an action needs.
    func require(_ role: AdminRole) throws -> AdminIdentity {
        guard let identity else { throw HTTPError(.unauthorized) }
        guard identity.role >= role else {
            throw ProblemError(status: .forbidden, detail: "this needs the \(role.rawValue) role; \(identity.name) is a \(identity.role.rawValue)")
        }
        return identity
    }
}

/// Random tokens for sessions' CSRF and job ids.
enum Random {
    static func token(bytes: Int = 24) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }
}

/// For `switchboard admin hash-password` and `new-token`.
package enum AdminPasswords {
    package static func hash(_ password: String, cost: Int = 12) -> String { Bcrypt.hash(password, cost: UInt8(clamping: cost)) }

    package static func newToken() -> (token: String, sha256: String) {
        let token = "sbt_" + Random.token(bytes: 24)
        return (token, SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined())
    }
}
