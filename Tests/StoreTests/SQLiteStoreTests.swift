import Foundation
import Testing

@testable import Rules
@testable import Store

func temporaryStore() throws -> SQLiteStore {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-store-\(UUID().uuidString)")
    return try SQLiteStore(path: dir.appendingPathComponent("switchboard.sqlite").path)
}

func outbound(_ id: String, conversation: String, inbound: InboundKey) -> StoredOutbound {
    StoredOutbound(messageId: id, conversationId: conversation, inbound: inbound, target: "vendor-x", type: "create",
                   rule: "r", body: Data("{\"id\":\"\(id)\"}".utf8))
}

@Suite struct SQLiteStoreTests {
    @Test func createFindAndLink() throws {
        let store = try temporaryStore()
        let now = Date()
        let key = InboundKey("customer-a", "m1")
        let outcome = try store.commit([Commit(
            inbound: key, conversationId: "c1", expectedVersion: 0, newReferences: [TicketRef("customer-a", "INC1")],
            timeline: [TimelineEntry(conversationId: "c1", at: now, kind: "received", endpoint: "customer-a", who: "alice", detail: "x")],
            outbox: [outbound("o1", conversation: "c1", inbound: key)], at: now)])
        #expect(outcome == [.committed(version: 1)])
        // A second endpoint's reference links to the same conversation.
        let key2 = InboundKey("vendor-x", "v1")
        #expect(try store.commit([Commit(inbound: key2, conversationId: "c1", expectedVersion: 1,
                                         newReferences: [TicketRef("vendor-x", "VX-1")], at: now)]) == [.committed(version: 2)])
        let byVendor = try #require(try store.find([TicketRef("vendor-x", "VX-1")]))
        #expect(byVendor.id == "c1")
        #expect(byVendor.version == 2)
        #expect(byVendor.references == ["customer-a": "INC1", "vendor-x": "VX-1"])
        #expect(try store.find([TicketRef("vendor-x", "VX-404")]) == nil)
        #expect(try store.outbound(messageId: "o1")?.inbound == key)
        #expect(try store.timeline(conversationId: "c1").map(\.who) == ["alice"])
    }

    @Test func duplicateInboundReturnsTheStoredOutbox() throws {
        let store = try temporaryStore()
        let key = InboundKey("customer-a", "m1")
        let c = Commit(inbound: key, conversationId: "c1", expectedVersion: 0, newReferences: [TicketRef("customer-a", "INC1")],
                       outbox: [outbound("o1", conversation: "c1", inbound: key), outbound("o2", conversation: "c1", inbound: key)], at: Date())
        #expect(try store.commit([c]) == [.committed(version: 1)])
        var again = c
        again.expectedVersion = 1
        again.outbox = []
        let outcome = try store.commit([again])
        guard case .duplicate(let conversation, let outbox) = outcome.first else {
            Issue.record("a resent message id was applied twice: \(outcome)")
            return
        }
        #expect(conversation == "c1")
        #expect(outbox.map(\.messageId) == ["o1", "o2"])
        #expect(try store.conversation(id: "c1")?.version == 1)
    }

    @Test func staleVersionIsRefused() throws {
        let store = try temporaryStore()
        let now = Date()
        #expect(try store.commit([Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 0, at: now)]) == [.committed(version: 1)])
        // Two writers decided against version 1; the second loses.
        let outcomes = try store.commit([
            Commit(inbound: InboundKey("a", "2"), conversationId: "c1", expectedVersion: 1, at: now),
            Commit(inbound: InboundKey("a", "3"), conversationId: "c1", expectedVersion: 1, at: now),
        ])
        #expect(outcomes == [.committed(version: 2), .stale])
        // Creating a conversation that exists already is stale as well.
        #expect(try store.commit([Commit(inbound: InboundKey("a", "4"), conversationId: "c1", expectedVersion: 0, at: now)]) == [.stale])
    }

    @Test func referenceOwnedByAnotherConversationIsStale() throws {
        let store = try temporaryStore()
        let now = Date()
        _ = try store.commit([Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 0,
                                     newReferences: [TicketRef("vendor-x", "VX-1")], at: now)])
        #expect(try store.commit([Commit(inbound: InboundKey("a", "2"), conversationId: "c2", expectedVersion: 0,
                                         newReferences: [TicketRef("vendor-x", "VX-1")], at: now)]) == [.stale])
    }

    @Test func survivesReopening() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-reopen-\(UUID().uuidString)")
        let path = dir.appendingPathComponent("s.sqlite").path
        do {
            let store = try SQLiteStore(path: path)
            _ = try store.commit([Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 0,
                                         newReferences: [TicketRef("a", "T1")], at: Date())])
        }
        let reopened = try SQLiteStore(path: path)
        #expect(try reopened.find([TicketRef("a", "T1")])?.id == "c1")
    }
}
