import Foundation
import Synchronization
import Testing

@testable import Rules
@testable import Store

/// The SQLite store's WAL is checkpointed by a thread of its own, not in the commits. While commits keep
/// coming, that alone would never let the WAL start over, so it must be finished between two commits
/// once the WAL is long: the file stays bounded, and what was committed stays readable. The loop runs on
/// a thread of the test's, as on the store role's `RoleService`.
@Suite struct SQLiteWALTests {
    final class Done: Sendable { let flag = Atomic<Bool>(false) }

    func path() -> String { temporarySQLitePath("sb-wal") }

    /// 300 batches of 10 commits, back to back, each with a 4 KiB outbound body; the size of the WAL file afterwards.
    func load(_ file: String, _ limits: SQLiteStore.WALLimits) throws -> Int {
        let store = try SQLiteStore(path: file, wal: limits)
        let done = Done()
        let thread = Thread { store.checkpoint { !done.flag.load(ordering: .relaxed) } }
        thread.start()
        let body = Data(repeating: UInt8(ascii: "x"), count: 4096)
        for batch in 0..<300 {
            let commits = (0..<10).map { n in
                let conversation = "c\(n)"
                let inbound = InboundKey("customer-a", "m\(batch)-\(n)")
                return Commit(
                    inbound: inbound, conversationId: conversation, expectedVersion: batch,
                    newReferences: batch == 0 ? [TicketRef("customer-a", "INC\(n)")] : [],
                    outbox: [StoredOutbound(
                        messageId: "o\(batch)-\(n)", conversationId: conversation, inbound: inbound, target: "vendor-x",
                        type: "update", rule: "r", body: body)],
                    counters: ["n": batch + 1], at: Date())
            }
            #expect(try store.commit(commits) == (0..<10).map { _ in .committed(version: batch + 1) })
        }
        let size = try FileManager.default.attributesOfItem(atPath: file + "-wal")[.size] as? Int ?? -1
        done.flag.store(true, ordering: .relaxed)
        // Everything is there for a new reader of the file.
        let fresh = try SQLiteStore(path: file)
        #expect(try fresh.conversations(ids: ["c9"])[0]?.counters == ["n": 300])
        #expect(try fresh.outbound(messageId: "o299-9")?.body == body)
        return size
    }

    @Test func theWALStartsOverWhileCommitsKeepComing() throws {
        let bounded = try load(path(), SQLiteStore.WALLimits(restartPages: 100, backstopPages: 1_000_000))
        let unbounded = try load(path(), SQLiteStore.WALLimits(restartPages: 1_000_000, backstopPages: 1_000_000))
        // Without a restart the WAL holds every page ever written (some thousands); with it, a few hundred.
        print("WAL bytes: \(bounded) with restarts, \(unbounded) without")
        #expect(unbounded > 8_000_000, "unbounded WAL: \(unbounded) bytes")
        #expect(bounded < unbounded / 3, "WAL \(bounded) bytes with restarts, \(unbounded) without")
    }
}
