import Foundation
import Synchronization
import Testing

@testable import Rules
@testable import Store
@testable import Telemetry

/// The store role wraps its store in `MeteredStore`: the wrapper must hand a batch's commit requests to
/// the store's own group commit (one transaction for all callers), not commit them one by one.
@Suite struct MeteredStoreTests {
    final class Spy: FleetStore, Sendable {
        let calls = Mutex<[String]>([])
        func find(_ refs: [TicketRef]) throws -> ConversationSnapshot? { nil }
        func find(batch: [[TicketRef]]) throws -> [ConversationSnapshot?] { batch.map { _ in nil } }
        func outbound(messageIds: [String]) throws -> [StoredOutbound?] { messageIds.map { _ in nil } }
        func conversations(ids: [String]) throws -> [ConversationSnapshot?] { ids.map { _ in nil } }
        func commit(_ commits: [Commit]) throws -> [CommitOutcome] {
            calls.withLock { $0.append("one") }
            return commits.map { _ in .committed(version: 1) }
        }
        func commit(groups: [[Commit]]) -> [Result<[CommitOutcome], any Error>] {
            calls.withLock { $0.append("groups of \(groups.count)") }
            return groups.map { g in g.isEmpty ? .failure(StoreError("empty")) : .success(g.map { _ in .stale }) }
        }
        func heartbeat(member: String, ttl: TimeInterval) throws -> [String] { [member] }
        func leave(member: String) throws {}
    }

    @Test func groupCommitsReachTheStoresOwnGroupCommit() throws {
        let spy = Spy()
        let metered = MeteredStore(spy, backend: "spy")
        let c = Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 0, at: Date())
        let results = metered.commit(groups: [[c], [], [c, c]])
        #expect(spy.calls.withLock { $0 } == ["groups of 3"])
        #expect(results.map { (try? $0.get())?.count } == [1, nil, 2])
    }
}
