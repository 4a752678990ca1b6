import Foundation
import Rules
import Synchronization

/// Where a request comes from. Behind the documented TLS proxy every peer is the proxy; only a peer listed
/// in `admin.trusted_proxies` may name the client, in `admin.client_address_header` (X-Forwarded-For: the
/// rightmost address that is not itself a trusted proxy, since each proxy appends the one it saw).
struct ClientAddress: Equatable {
    var address: String
    /// The request came through a trusted proxy (a TLS proxy: the browser spoke HTTPS).
    var viaProxy: Bool

    static func resolve(peer: String, forwarded: String?, trusted: Set<String>) -> ClientAddress {
        guard trusted.contains(peer) else { return ClientAddress(address: peer, viaProxy: false) }
        let hops = (forwarded ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !trusted.contains(hop) {
            // Anything but an address (a name, garbage) ends the chain where it is: the peer answers for it.
            return AdminSettings.isIPAddress(hop) ? ClientAddress(address: hop, viaProxy: true) : ClientAddress(address: peer, viaProxy: true)
        }
        return ClientAddress(address: hops.first ?? peer, viaProxy: true)
    }
}

/// Failed sign-ins per (user name, client address), with back-off: the first `free` failures cost
/// nothing, then each further attempt must wait `base` seconds, doubling per failure up to `cap`. Keyed by
/// the pair, so failures from one address never lock a user out at another (behind a proxy every peer is
/// the proxy: `ClientAddress`), and a pair forgets its failures after `forget` seconds without one.
final class SignInLimiter: Sendable {
    private struct Record { var failures: Int; var last: Date }
    private let records = Mutex([String: Record]())
    static let free = 5
    static let base: TimeInterval = 5
    static let cap: TimeInterval = 300
    static let forget: TimeInterval = 900
    static let maxRecords = 10_000

    private static func key(_ user: String, _ address: String) -> String { user + "\u{0}" + address }

    static func backoff(failures: Int) -> TimeInterval {
        failures < free ? 0 : min(cap, base * pow(2, Double(failures - free)))
    }

    /// Seconds this pair must still wait before its next attempt, or nil if it may try now.
    func wait(user: String, address: String, now: Date = Date()) -> TimeInterval? {
        records.withLock { r in
            guard let rec = r[Self.key(user, address)], now.timeIntervalSince(rec.last) < Self.forget else { return nil }
            let left = Self.backoff(failures: rec.failures) - now.timeIntervalSince(rec.last)
            return left > 0 ? left : nil
        }
    }

    func failed(user: String, address: String, now: Date = Date()) {
        records.withLock { r in
            let key = Self.key(user, address)
            let old = r[key].flatMap { now.timeIntervalSince($0.last) < Self.forget ? $0 : nil }
            r[key] = Record(failures: (old?.failures ?? 0) + 1, last: now)
            if r.count > Self.maxRecords { r = r.filter { now.timeIntervalSince($0.value.last) < Self.forget } }
        }
    }

    func succeeded(user: String, address: String) {
        _ = records.withLock { r in r.removeValue(forKey: Self.key(user, address)) }
    }
}

/// At most `limit` bcrypt verifications at once: each costs a core for a few hundred milliseconds, and a
/// flood of sign-ins must not take the cores the admin's pages (and, in `switchboard run`, the workers)
/// need. A sign-in beyond it is answered 503 at once.
final class BcryptGate: Sendable {
    private let running = Mutex(0)
    let limit: Int

    init(limit: Int = max(1, ProcessInfo.processInfo.activeProcessorCount / 2)) { self.limit = limit }

    func enter() -> Bool {
        running.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func leave() { running.withLock { $0 -= 1 } }
}

/// Where a sign-in may send the browser afterwards: a path of ours only. Refused (giving "/"): anything
/// not starting with one "/", a second "/" or "\" at any point a browser may read as the start of another
/// host, and control characters or backslashes, in the text or in any percent-decoding of it
/// (`/%09/evil.example` is `//evil.example` to a browser, which drops tabs and newlines).
enum SafeNext {
    static func path(_ next: String?) -> String {
        guard let next, next.utf8.count <= 2048 else { return "/" }
        var forms = [next]
        var text = next
        for _ in 0..<3 {
            guard let decoded = text.removingPercentEncoding, decoded != text else { break }
            forms.append(decoded)
            text = decoded
        }
        for form in forms {
            guard form.hasPrefix("/"), !form.hasPrefix("//") else { return "/" }
            if form.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "\\" }) {
                return "/"
            }
            let path = form.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            if path.contains("//") { return "/" }
        }
        return next
    }
}
