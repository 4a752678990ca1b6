import Crypto
import Foundation
import Testing

@testable import Ingress
@testable import Roles
@testable import Rules

/// Each kind of webhook authentication admits its credentials and nothing near them.
@Suite struct WebhookAuthTests {
    static let token = "sbt_0123456789abcdef"
    static var tokenSHA: String { SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined() }

    func auth(_ a: WebhookSettings.Auth) throws -> WebhookAuth {
        try WebhookAuth(WebhookSettings(auth: a, maxBytes: 1024, location: SourceLocation(file: "t", line: 1)), endpoint: "t")
    }

    @Test func bearerTokens() async throws {
        let a = try auth(.bearer(sha256: Self.tokenSHA))
        #expect(await a.check(authorization: "Bearer \(Self.token)", pathToken: nil, signature: nil, body: Data()) == .allowed)
        #expect(await a.check(authorization: "bearer \(Self.token)", pathToken: nil, signature: nil, body: Data()) == .allowed)
        #expect(await a.check(authorization: "Bearer \(Self.token)x", pathToken: nil, signature: nil, body: Data()) != .allowed)
        #expect(await a.check(authorization: nil, pathToken: Self.token, signature: nil, body: Data()) != .allowed)
        #expect(await a.check(authorization: "Basic \(Self.token)", pathToken: nil, signature: nil, body: Data()) != .allowed)
    }

    @Test func urlTokens() async throws {
        let a = try auth(.urlToken(sha256: Self.tokenSHA))
        #expect(await a.check(authorization: nil, pathToken: Self.token, signature: nil, body: Data()) == .allowed)
        #expect(await a.check(authorization: "Bearer \(Self.token)", pathToken: nil, signature: nil, body: Data()) != .allowed)
        #expect(await a.check(authorization: nil, pathToken: String(Self.token.dropLast()), signature: nil, body: Data()) != .allowed)
    }

    @Test func hmacOverTheRawBody() async throws {
        let name = "SB_TEST_HMAC_SECRET_\(UInt32.random(in: 0...UInt32.max))"
        setenv(name, "s3cret\n", 1)
        let a = try auth(.hmac(header: "X-Hub-Signature", prefix: "sha256=", algorithm: .sha256, secret: .env(name)))
        let body = Data(#"{"issue":{"key":"J-1"}}"#.utf8)
        // The trailing newline of the secret is not part of it.
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data("s3cret".utf8)))
        let hex = Data(mac).map { String(format: "%02x", $0) }.joined()
        #expect(await a.check(authorization: nil, pathToken: nil, signature: "sha256=\(hex)", body: body) == .allowed)
        #expect(await a.check(authorization: nil, pathToken: nil, signature: "SHA256=\(hex.uppercased())", body: body) == .allowed)
        #expect(await a.check(authorization: nil, pathToken: nil, signature: "sha256=\(hex)", body: body + Data(" ".utf8)) != .allowed)
        #expect(await a.check(authorization: nil, pathToken: nil, signature: hex, body: body) != .allowed)
        #expect(await a.check(authorization: nil, pathToken: nil, signature: "sha256=zz", body: body) != .allowed)
        #expect(await a.check(authorization: nil, pathToken: nil, signature: nil, body: body) != .allowed)
    }

    @Test func aMissingSecretStopsTheStartWithItsSource() throws {
        #expect(throws: Secrets.Missing.self) {
            try auth(.hmac(header: "X", prefix: "", algorithm: .sha1, secret: .file("/nonexistent/secret")))
        }
    }

    @Test func basicWithABcryptHash() async throws {
        let hash = "$2b$04$" + "0123456789012345678901" // not valid: nothing verifies against it
        let bad = try auth(.basic(user: "sn", passwordHash: hash))
        #expect(await bad.check(authorization: "Basic " + Data("sn:pw".utf8).base64EncodedString(), pathToken: nil, signature: nil, body: Data()) != .allowed)
    }
}
