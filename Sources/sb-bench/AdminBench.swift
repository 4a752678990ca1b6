import AMQP
import Admin
import Foundation
import JSONPath
import Logging
import Rules
import ServiceLifecycle
import Store
import Roles
#if canImport(FoundationNetworking)
import FoundationNetworking
import Wiring
#endif

/// `sb-bench --shape admin`: the administrator's view on a big store. Fills a store (SQLite, or the
/// PostgreSQL of `--store-url`) with `conversations` conversations through the real commit path (two
/// tickets, an attribute, a counter, a timeline with the inbound body, one outbound message each), starts
/// the admin's HTTP server on it and times, through HTTP as a browser or script would: the search by a
/// vendor ticket id (`/api/v1/conversations?ticket=`) and the conversation page (`/conversations/{id}`).
enum AdminBench {
    static func measure(conversations: Int, samples: Int, storeURL: String?, config directory: String) throws {
        let logger = Logger(label: "sb-bench")
        let dataDir = NSTemporaryDirectory() + "sb-admin-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        var environment = ProcessInfo.processInfo.environment
        environment["SB_DATA_DIR"] = dataDir
        environment["SB_STORE_URL"] = storeURL ?? "sqlite"
        environment["SB_SQLITE_SYNCHRONOUS"] = "normal"
        var config = try Setup.loadConfig(directory: directory, environment: environment)
        let (token, sha) = AdminPasswords.newToken()
        var admin = AdminSettings(location: SourceLocation(file: "sb-bench", line: 0))
        admin.listen = "127.0.0.1:0"
        admin.plainHTTP = true
        admin.tokens = [AdminToken(name: "bench", role: .viewer, sha256: sha, location: admin.location)]
        config.admin = admin
        let store = try Stores.openStandalone(config, logger: logger)
        let adminStore: any AdminStore = store

        let started = nanos()
        try fill(store, conversations: conversations)
        let fillSeconds = Double(nanos() - started) / 1e9
        say(String(format: "admin bench: %d conversations filled in %.0f s (%.0f/s), store %@", conversations, fillSeconds,
                   Double(conversations) / fillSeconds, storeURL.map { ConnectionOptions.redact($0) } ?? "sqlite"))

        let bound = Bound()
        let server = try AdminServer.build(config: config, store: adminStore, logger: logger) { bound.set($0) }
        let group = ServiceGroup(services: [server], logger: logger)
        let running = Task { try await group.run() }
        defer { running.cancel() }
        guard let base = bound.wait(seconds: 10) else { throw BenchError("the admin server did not start") }

        let session = URLSession(configuration: .ephemeral)
        var search: [Double] = []
        var page: [Double] = []
        var api: [Double] = []
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<samples {
            let n = Int.random(in: 0..<conversations, using: &generator)
            var t = nanos()
            let found = try get(session, base + "api/v1/conversations?ticket=VX-\(n)", token: token)
            search.append(Double(nanos() - t) / 1e6)
            guard case .object(let o) = try JSON.parse(found), case .array(let hits)? = o["conversations"],
                let id = hits.first?["conversation_id"]?.stringValue
            else { throw BenchError("VX-\(n) was not found: \(String(decoding: found, as: UTF8.self).prefix(200))") }
            t = nanos()
            let html = try get(session, base + "conversations/\(id)", token: token)
            page.append(Double(nanos() - t) / 1e6)
            guard String(decoding: html, as: UTF8.self).contains("INC\(n)<") else { throw BenchError("the page of \(id) lacks INC\(n)") }
            t = nanos()
            _ = try get(session, base + "api/v1/conversations/\(id)", token: token)
            api.append(Double(nanos() - t) / 1e6)
        }
        for (name, values) in [("search by ticket id", search), ("conversation page", page), ("conversation API", api)] {
            let r = Result(count: values.count, seconds: 1, latenciesMs: values)
            say(String(format: "admin %@ (%d samples over %d conversations): p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                       name, values.count, conversations, r.p50, r.p99, r.max))
        }
    }

    /// Conversations through the store's own commit path, in transactions of 2,000. `prefix` keeps their
    /// tickets apart from the ones a pipeline run then uses (`INC0000001`, `VX-1`).
    static func fill(_ store: ConversationStore, conversations: Int, prefix: String = "", progress: String = "admin bench") throws {
        let at = Date()
        let body = String(repeating: "x", count: 400)
        var n = 0
        while n < conversations {
            let commits = (n..<min(conversations, n + 2000)).map { i -> Commit in
                let id = "\(prefix)bench-\(i)"
                let inbound = InboundKey("customer-a", "\(prefix)m-\(i)")
                let received = #"{"number":"\#(prefix)INC\#(i)","short_description":"SAP down","description":"\#(body)","sys_updated_by":"alice"}"#
                let outbound = StoredOutbound(
                    messageId: "sb-\(id)-0", conversationId: id, inbound: inbound, target: "vendor-x", type: "create",
                    rule: "create-at-vendor", body: Data(#"{"summary":"INC\#(i): SAP down","description":"\#(body)"}"#.utf8))
                return Commit(
                    inbound: inbound, conversationId: id, expectedVersion: 0,
                    newReferences: [TicketRef("customer-a", "\(prefix)INC\(i)"), TicketRef("vendor-x", "\(prefix)VX-\(i)")],
                    timeline: [
                        TimelineEntry(conversationId: id, at: at, kind: .received, endpoint: "customer-a", who: "alice", messageId: "m-\(i)",
                                      detail: "update of customer-a/INC\(i)", body: received),
                        TimelineEntry(conversationId: id, at: at, kind: .ruleMatched, endpoint: "customer-a", messageId: "m-\(i)",
                                      rule: "create-at-vendor", detail: "rule 'create-at-vendor' matched"),
                        TimelineEntry(conversationId: id, at: at, kind: .attribute, endpoint: "customer-a", messageId: "m-\(i)",
                                      rule: "remember-origin", detail: "original_group: (none) -> \"g-local\""),
                        TimelineEntry(conversationId: id, at: at, kind: .sent, endpoint: "vendor-x", messageId: outbound.messageId,
                                      rule: "create-at-vendor", detail: "create to vendor-x"),
                        TimelineEntry(conversationId: id, at: at, kind: .linked, endpoint: "vendor-x", messageId: "m-\(i)",
                                      detail: "linked vendor-x/VX-\(i)"),
                    ],
                    outbox: [outbound], attributes: ["original_group": .string("g-local")], counters: ["lock_retries": 0],
                    digest: "d\(i)", at: at, attempt: "fill")
            }
            let outcomes = try store.commit(commits)
            guard outcomes.allSatisfy({ if case .committed = $0 { return true } else { return false } }) else {
                throw BenchError("filling: a commit was not applied (is the store empty?)")
            }
            n += commits.count
            if n % 100_000 == 0 { say("\(progress): \(n) conversations") }
        }
    }

    static func get(_ session: URLSession, _ url: String, token: String) throws -> Data {
        var request = URLRequest(url: URL(string: url)!)
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        let box = Bound.DataBox()
        let done = DispatchSemaphore(value: 0)
        session.dataTask(with: request) { data, response, error in
            box.set(data, (response as? HTTPURLResponse)?.statusCode ?? 0, error)
            done.signal()
        }.resume()
        done.wait()
        let (data, status, error) = box.get()
        guard status == 200, let data else { throw BenchError("GET \(url): \(status) \(error.map { "\($0)" } ?? "")") }
        return data
    }

    struct BenchError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }
}

/// The URL the server reports once bound, handed from its task to the bench's thread.
final class Bound: @unchecked Sendable {
    private let lock = NSLock()
    private var url: String?
    private let ready = DispatchSemaphore(value: 0)

    func set(_ u: String) {
        lock.lock()
        url = u.replacingOccurrences(of: "localhost", with: "127.0.0.1")
        lock.unlock()
        ready.signal()
    }

    func wait(seconds: Double) -> String? {
        _ = ready.wait(timeout: .now() + seconds)
        lock.lock()
        defer { lock.unlock() }
        return url
    }

    final class DataBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: (Data?, Int, Error?) = (nil, 0, nil)
        func set(_ d: Data?, _ s: Int, _ e: Error?) {
            lock.lock()
            value = (d, s, e)
            lock.unlock()
        }
        func get() -> (Data?, Int, Error?) {
            lock.lock()
            defer { lock.unlock() }
            return value
        }
    }
}
