import Foundation
import Testing

@testable import JSONPath
@testable import Rules
@testable import Store

/// The SQLite store answers lookups of conversations it committed from memory. Those answers must be
/// exactly what the database holds, and a commit it did not make must not leave it answering old state.
@Suite struct SQLiteCacheTests {
    func path() -> String { temporarySQLitePath("sb-cache") }

    func same(_ a: ConversationSnapshot?, _ b: ConversationSnapshot?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return a.id == b.id && a.version == b.version && a.references == b.references && a.attributes == b.attributes
            && a.counters == b.counters
    }

    @Test func cachedConversationsAreWhatTheDatabaseHolds() throws {
        let file = path()
        let store = try SQLiteStore(path: file)
        let ref = TicketRef("customer-a", "INC1")
        let values: [JSON] = [.string("portal"), 1.5, 2, ["nested": [true, .null]], "x\"y"]
        for (n, value) in values.enumerated() {
            let commit = Commit(
                inbound: InboundKey("customer-a", "m\(n)"), conversationId: "c1", expectedVersion: n,
                newReferences: n == 0 ? [ref] : (n == 2 ? [TicketRef("vendor-x", "VX-1")] : []),
                attributes: ["a": .some(value), "gone": n == 3 ? JSON?.none : .some(.string("here"))], counters: ["n": n + 1],
                at: Date())
            #expect(try store.commit([commit]) == [.committed(version: n + 1)])
            // The same store answers from memory; a fresh one reads the file.
            let cached = try store.find(batch: [[ref]])[0]
            let read = try SQLiteStore(path: file).find(batch: [[ref]])[0]
            #expect(same(cached, read), "after commit \(n): \(String(describing: cached)) != \(String(describing: read))")
            #expect(cached?.version == n + 1)
        }
        #expect(try store.conversations(ids: ["c1"])[0]?.counters == ["n": values.count])
    }

    @Test func aCommitByAnotherStoreOnTheFileIsNoticed() throws {
        let file = path()
        let mine = try SQLiteStore(path: file)
        let other = try SQLiteStore(path: file)
        let ref = TicketRef("customer-a", "INC2")
        func bump(_ store: SQLiteStore, _ id: String, from version: Int) throws -> [CommitOutcome] {
            try store.commit([Commit(
                inbound: InboundKey("customer-a", id), conversationId: "c2", expectedVersion: version,
                newReferences: version == 0 ? [ref] : [], counters: ["n": version + 1], at: Date())])
        }
        #expect(try bump(mine, "m1", from: 0) == [.committed(version: 1)])
        #expect(try mine.find(batch: [[ref]])[0]?.version == 1)
        // Another process writes the same file: `mine` still remembers version 1.
        #expect(try bump(other, "m2", from: 1) == [.committed(version: 2)])
        // A decision made on what `mine` remembers is refused, and then `mine` reads the file again.
        #expect(try bump(mine, "m3", from: 1) == [.stale])
        #expect(try mine.find(batch: [[ref]])[0]?.version == 2)
        #expect(try bump(mine, "m3", from: 2) == [.committed(version: 3)])
        #expect(try mine.find(batch: [[ref]])[0]?.counters == ["n": 3])
    }
}
