import Foundation
import Testing

@testable import Rules
@testable import Store

/// Durability as documented: by default every commit is synced before the store answers (FULL), so a
/// power loss loses nothing acked; `sqlite_synchronous: normal` is the documented, faster alternative.
@Suite struct SQLiteDurabilityTests {
    @Test func everyCommitIsSyncedByDefault() throws {
        #expect(try SQLiteStore(path: temporarySQLitePath("sb-sync")).synchronousLevel() == 2)
        #expect(try SQLiteStore(path: temporarySQLitePath("sb-sync"), synchronous: "normal").synchronousLevel() == 1)
        #expect(Settings().sqliteSynchronous == "full")
        let loaded = try ConfigLoader.load(
            files: [("s.yaml", "settings: {sqlite_synchronous: normal}\nendpoints: {a: {ticket_id: $.id}}")], environment: [:])
        #expect(loaded.settings.sqliteSynchronous == "normal")
    }
}
