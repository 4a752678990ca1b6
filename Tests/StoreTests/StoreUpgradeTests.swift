import Foundation
import GRDB
import JSONPath
import Logging
import Testing

@testable import Rules
@testable import Store

/// A database written by an older release opens in this one and keeps everything: the fixtures are what
/// `switchboard run` of a534a15 (SQLite at schema v10, PostgreSQL before its schema had versions) wrote for
/// two tickets through the example configuration, dumped as SQL (Fixtures/make_fixture.py makes them).
@Suite struct StoreUpgradeTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    @Test func aSQLiteDatabaseOfA534a15IsUpgradedWithoutLoss() async throws {
        let dump = try String(contentsOf: Self.fixtures.appendingPathComponent("a534a15.sqlite.sql"), encoding: .utf8)
        let path = temporarySQLitePath("sb-upgrade")
        try await onThread {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try DatabaseQueue(path: path).writeWithoutTransaction { db in try db.execute(sql: dump) }
            let store = try SQLiteStore(path: path)
            let applied = try store.pool.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
            #expect(applied.count == SQLiteSchema.migrations.count)
            try Self.everythingIsKept(store)
        }
    }

    @Test func aPostgreSQLDatabaseOfA534a15IsUpgradedWithoutLoss() async throws {
        guard let base = ProcessInfo.processInfo.environment["SB_TEST_POSTGRES_URL"], !base.isEmpty else { throw Backend.NoServer() }
        let schema = "up" + UUID().uuidString.prefix(8).lowercased()
        let dump = try String(contentsOf: Self.fixtures.appendingPathComponent("a534a15.postgres.sql"), encoding: .utf8)
            .replacingOccurrences(of: "sb_fixture_schema", with: schema)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sb-upgrade-\(schema).sql")
        try dump.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        // psql: the dump is pg_dump's (COPY ... FROM stdin, psql's \restrict).
        let psql = Process()
        psql.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        psql.arguments = ["-q", "-v", "ON_ERROR_STOP=1", "-f", file.path, base]
        psql.standardOutput = FileHandle.nullDevice
        try psql.run()
        psql.waitUntilExit()
        try #require(psql.terminationStatus == 0, "psql could not load the fixture")
        try await onThread {
            let store = try PostgresStore.standalone(url: "\(base)?schema=\(schema)", logger: Logger(label: "store-test"))
            let newest = try store.blocking {
                try await store.client.query("SELECT max(version) FROM schema_version").collect().first?.decode(Int.self)
            }
            #expect(newest == PostgresSchema.migrations.count)
            try Self.everythingIsKept(store)
        }
    }

    /// What the fixture holds, read through the store after the upgrade; then each conversation goes on.
    static func everythingIsKept(_ store: ConversationStore) throws {
        let kinds = [
            "received", "rule-matched", "attribute", "received", "rule-matched", "rule-matched", "sent", "acked", "linked", "no-rule",
            "received", "rule-matched", "rule-matched", "attribute", "sent", "ack-error", "rule-matched", "counter", "delay-scheduled",
        ]
        for (number, key) in [("INC0000001", "VX-1"), ("INC0000002", "VX-2")] {
            let c = try #require(try store.find([TicketRef("customer-a", number)]))
            #expect(try store.find([TicketRef("vendor-x", key)])?.id == c.id)
            #expect(c.version == 5 && c.references == ["customer-a": number, "vendor-x": key] && c.counters == ["lock_retries": 1])
            #expect(c.attributes["original_group"] == ["display_value": "Local Service Desk", "value": "g-local"])
            #expect(c.attributes["vendor_fields"]?["summary"] == .string("\(number): SAP down"))
            let timeline = try store.timeline(conversationId: c.id)
            #expect(timeline.map(\.kind.rawValue) == kinds)
            #expect(timeline[0].body?.contains(number) == true && timeline[0].who == "alice")
            #expect(timeline[15].detail.hasSuffix("to vendor-x: open in another session") && timeline[15].body?.contains("LOCKED") == true)
            // The outbox: the create and the update as sent, and the LOCKED retry's timer a minute out.
            let sent = timeline.filter { $0.kind == .sent }.compactMap(\.messageId)
            let outbound = try store.outbound(messageIds: sent).compactMap { $0 }
            #expect(outbound.map(\.type) == ["create", "update"] && outbound.allSatisfy { $0.target == "vendor-x" })
            #expect(try JSON.parse(outbound[0].body)["customer_reference"] == .string(number))
            // The dedupe window: the ticket's first message again is a duplicate, not a new effect.
            let again = try store.commit([Commit(inbound: InboundKey("customer-a", "\(number)-1"), conversationId: c.id, expectedVersion: 5, at: Date())])
            guard case .duplicate(let owner, _)? = again.first, owner == c.id else {
                Issue.record("the first message again was answered \(again), not as a duplicate")
                return
            }
            // The conversation goes on, with the typed fields of this release.
            var next = TimelineEntry(conversationId: c.id, at: Date(timeIntervalSince1970: 1_900_000_000), kind: .received, endpoint: "customer-a",
                                     who: "bob", messageId: "\(number)-4", detail: "update of customer-a/\(number)", body: "{}")
            (next.messageType, next.configuration, next.met) = ("update", "0123456789ab", 5)
            #expect(try store.commit([Commit(inbound: InboundKey("customer-a", "\(number)-4"), conversationId: c.id, expectedVersion: 5,
                                             timeline: [next], at: next.at)]) == [.committed(version: 6)])
            let after = try store.timeline(conversationId: c.id)
            #expect(after.count == kinds.count + 1 && after.last == next)
        }
    }
}
