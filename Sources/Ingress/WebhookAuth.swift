import Crypto
import Foundation
import HummingbirdBcrypt
import Roles
import Rules
import Synchronization

/// Checks that a webhook request comes from its endpoint (`endpoints.<name>.webhook.auth`). Every
/// comparison of a presented secret is in constant time (HMAC's own check; digests compared byte by byte
/// without an early exit). Secrets are read once, at start, from files or the environment.
struct WebhookAuth: Sendable {
    enum Verdict: Equatable { case allowed, refused(String) }

    let auth: WebhookSettings.Auth
    /// The HMAC key (auth hmac), read at start.
    private let key: SymmetricKey?
    /// Basic credentials verified before (SHA-256 of user and password): bcrypt is slow on purpose, and a
    /// sender posting many events a second must not pay it on each. Bounded; forgotten on restart.
    private let verified = Verified()
    private static let maxVerified = 64

    init(_ settings: WebhookSettings, endpoint: String) throws {
        auth = settings.auth
        if case .hmac(_, _, _, let source) = settings.auth {
            key = SymmetricKey(data: try Secrets.read(source, what: "endpoints.\(endpoint).webhook's HMAC secret"))
        } else {
            key = nil
        }
    }

    /// `authorization`: the Authorization header; `pathToken`: the path segment after the endpoint;
    /// `signature`: the configured signature header's value (auth hmac).
    func check(authorization: String?, pathToken: String?, signature: String?, body: Data) async -> Verdict {
        switch auth {
        case .bearer(let sha256):
            guard let a = authorization, a.count > 7, a.prefix(7).lowercased() == "bearer " else { return .refused("no bearer token") }
            return Self.sameDigest(String(a.dropFirst(7)).trimmingCharacters(in: .whitespaces), sha256) ? .allowed : .refused("wrong token")
        case .urlToken(let sha256):
            guard let t = pathToken, !t.isEmpty else { return .refused("no token in the URL") }
            return Self.sameDigest(t, sha256) ? .allowed : .refused("wrong token")
        case .basic(let user, let hash):
            guard let a = authorization, a.count > 6, a.prefix(6).lowercased() == "basic ",
                let decoded = Data(base64Encoded: String(a.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
                let pair = String(data: decoded, encoding: .utf8), let colon = pair.firstIndex(of: ":")
            else { return .refused("no basic credentials") }
            let name = String(pair[..<colon]), password = String(pair[pair.index(after: colon)...])
            guard name.utf8.count <= 256, password.utf8.count <= 1024 else { return .refused("wrong user or password") }
            let fingerprint = Data(SHA256.hash(data: Data("\(name)\u{0}\(password)".utf8)))
            if verified.set.withLock({ $0.contains(fingerprint) }) { return .allowed }
            // The hash is checked whatever the name, so timing does not tell a right name from a wrong one.
            let ok = await Offload.run { Bcrypt.verify(password, hash: hash) } && name == user
            guard ok else { return .refused("wrong user or password") }
            verified.set.withLock {
                if $0.count >= Self.maxVerified { $0.removeAll() }
                $0.insert(fingerprint)
            }
            return .allowed
        case .hmac(let header, let prefix, let algorithm, _):
            guard let key, var presented = signature?.trimmingCharacters(in: .whitespaces) else { return .refused("no \(header) header") }
            if !prefix.isEmpty {
                guard presented.lowercased().hasPrefix(prefix.lowercased()) else { return .refused("\(header) does not start with '\(prefix)'") }
                presented = String(presented.dropFirst(prefix.count))
            }
            guard let mac = Self.hexBytes(presented) else { return .refused("\(header) is not hexadecimal") }
            let valid: Bool
            switch algorithm {
            case .sha256: valid = HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key)
            case .sha1: valid = HMAC<Insecure.SHA1>.isValidAuthenticationCode(mac, authenticating: body, using: key)
            }
            return valid ? .allowed : .refused("wrong signature")
        }
    }

    /// SHA-256 of `presented` against the configured hex digest, in constant time.
    static func sameDigest(_ presented: String, _ expectedHex: String) -> Bool {
        let digest = Array(SHA256.hash(data: Data(presented.utf8)))
        guard let expected = hexBytes(expectedHex), expected.count == digest.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(digest, expected) { difference |= a ^ b }
        return difference == 0
    }

    static func hexBytes(_ s: String) -> [UInt8]? {
        let chars = Array(s.utf8)
        guard chars.count % 2 == 0, chars.count <= 256 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// The set of verified credentials, shared by the copies of a `WebhookAuth`.
private final class Verified: Sendable {
    let set = Mutex<Set<Data>>([])
}

package struct IngressError: Error, CustomStringConvertible {
    package var description: String
    init(_ d: String) { description = d }
}
