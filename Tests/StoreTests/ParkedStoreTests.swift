import Foundation
import Logging
import Rules
@testable import Store
import PostgresNIO
import Testing

/// The parked table on both backends: kept in order of arrival, a redelivered copy kept once, listings
/// with bounded excerpts, counts by group and endpoint, removal one by one.
enum ParkedContract {
    static func row(_ id: String, group: String = "bad json", endpoint: String? = "customer-a", ticket: String? = nil, body: String = "{}") -> ParkedRow {
        ParkedRow(
            id: id, parkedAt: Date(timeIntervalSince1970: 1_700_000_000), reason: "reason of \(id)", reasonGroup: group, stage: "intake",
            origin: "switchboard", endpoint: endpoint, ticket: ticket, messageId: "m-\(id)", properties: Data([1, 10, 0]), body: Data(body.utf8))
    }

    static func keepsOrderAndReadsBack(_ backend: Backend) async throws {
        let (opened, reopen) = try backend.open()
        let store = try #require(opened as? AdminStore)
        let big = String(repeating: "x", count: 10_000)
        try await onThread { try store.park([row("a", ticket: "T1"), row("b", group: "too large", body: big), row("c", endpoint: nil)]) }
        // A redelivered copy (the same id) is kept once; later rows keep coming after it.
        var redelivered = row("b", group: "too large", body: big)
        redelivered.redelivered = true
        let again = redelivered
        try await onThread { try store.park([again, row("d", ticket: "T1")]) }
        #expect(try await onThread { try store.parkedTotal() } == 4)
        // Another message that looks the same (a first delivery, the same id): a row of its own.
        try await onThread { try store.park([row("c", endpoint: nil)]) }
        #expect(try await store.parked(ParkedQuery()).map(\.id) == ["a", "b", "c", "d", "c-2"])
        // Two alike delivered again together (their first delivery was never stored): both kept.
        var twin = row("e")
        twin.redelivered = true
        try await onThread { [twin] in try store.park([twin, twin]) }
        #expect(try await store.parked(ParkedQuery()).map(\.id) == ["a", "b", "c", "d", "c-2", "e", "e-2"])
        // ... and once more (their ack was lost): still two.
        try await onThread { [twin] in try store.park([twin, twin]) }
        #expect(try await onThread { try store.parkedTotal() } == 7)
        for id in ["c-2", "e", "e-2"] { #expect(try await store.removeParked(id: id)) }
        let counts = try await store.parkedCounts()
        #expect(counts.total == 4)
        #expect(counts.groups.map(\.reason) == ["bad json", "too large"] && counts.groups.map(\.count) == [3, 1])
        #expect(counts.endpoints == ["customer-a": 3, "": 1])

        let listed = try await store.parked(ParkedQuery(limit: 10, excerpt: 100))
        #expect(listed.map(\.id) == ["a", "b", "c", "d"])
        #expect(listed.map(\.seq) == listed.map(\.seq).sorted() && Set(listed.map(\.seq)).count == 4)
        let b = try #require(listed.first { $0.id == "b" })
        #expect(b.body.count == 100 && b.bodyBytes == 10_000)
        #expect(b.properties == Data([1, 10, 0]) && b.reason == "reason of b" && b.stage == "intake" && b.origin == "switchboard")
        #expect(listed[0].ticket == "T1" && listed[0].parkedAt == Date(timeIntervalSince1970: 1_700_000_000) && listed[2].endpoint == nil)
        // Whole bodies when asked; by ids, by group, and after a seq (paging), always in order of arrival.
        #expect(try await store.parked(ParkedQuery(ids: ["b"], excerpt: nil)).first?.body == Data(big.utf8))
        #expect(try await store.parked(ParkedQuery(ids: ["d", "a"])).map(\.id) == ["a", "d"])
        #expect(try await store.parked(ParkedQuery(group: "bad json")).map(\.id) == ["a", "c", "d"])
        #expect(try await store.parked(ParkedQuery(after: listed[1].seq, limit: 1)).map(\.id) == ["c"])

        #expect(try await store.removeParked(id: "b"))
        #expect(try await !store.removeParked(id: "b"))
        #expect(try await store.parked(ParkedQuery()).map(\.id) == ["a", "c", "d"])
        // Another store process on the same database reads the same.
        let other = try #require(try await onThread { try reopen() } as? AdminStore)
        #expect(try await other.parkedCounts().total == 3)
    }
}

@Suite struct SQLiteParked {
    @Test func keepsOrderAndReadsBack() async throws { try await ParkedContract.keepsOrderAndReadsBack(.sqlite) }
}

@Suite(.serialized) struct PostgresParked {
    @Test func keepsOrderAndReadsBack() async throws { try await ParkedContract.keepsOrderAndReadsBack(.postgres) }

    /// Numbered migrations, each applied once and recorded; a database newer than the release is refused;
    /// two store processes starting together on an empty schema both come up (the advisory lock).
    @Test func theSchemaIsVersioned() async throws {
        guard let base = ProcessInfo.processInfo.environment["SB_TEST_POSTGRES_URL"], !base.isEmpty else { throw Backend.NoServer() }
        let schema = "v" + UUID().uuidString.prefix(8).lowercased()
        let url = "\(base)?schema=\(schema)"
        let logger = Logger(label: "t")
        // Each on a thread of its own (the store's synchronous bridge must not hold a concurrency thread).
        async let first = onThread { try PostgresStore.standalone(url: url, logger: logger) }
        async let second = onThread { try PostgresStore.standalone(url: url, logger: logger) }
        _ = try await first
        let store = try await second
        let versions = try await store.admin { db, logger in
            var out: [Int] = []
            for try await v in try await db.query("SELECT version FROM schema_version ORDER BY version", logger: logger).decode(Int.self) {
                out.append(v)
            }
            return out
        }
        #expect(versions == Array(1...PostgresSchema.migrations.count))
        _ = try await store.admin { db, logger in
            _ = try await db.query("INSERT INTO schema_version VALUES (999, 'from the future', 0)", logger: logger)
            return 0
        }
        let refused = await #expect(throws: StoreError.self) { try await onThread { _ = try PostgresStore.standalone(url: url, logger: logger) } }
        #expect("\(refused.map { "\($0)" } ?? "")".contains("version 999, newer than this release knows"))
    }
}
