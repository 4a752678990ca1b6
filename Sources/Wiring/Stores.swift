import Foundation
import Logging
import Roles
import Rules
import ServiceLifecycle
import Store

/// The store a process opens from its configuration (`store_url`): SQLite (a file, with its checkpointer as
/// a service) or PostgreSQL (a connection pool, as a service), and the one-shot reads of the CLI.
package enum Stores {
    /// The database `store_url` names, opened by the process that owns it (the store role, admin commands):
    /// the conversations, and the administrator's reads and the parked table beside them. A PostgreSQL
    /// store comes with its connection pool as a service, to run before (and stop after) those that use it.
    package static func open(_ config: SwitchboardConfig, logger: Logger) async throws -> OpenedStore {
        let url = config.settings.storeURL
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            let store = try PostgresStore(url: url, logger: logger)
            try await store.prepare()
            return OpenedStore(store: store, service: store)
        }
        let store = try SQLiteStore(path: Setup.sqlitePath(config), synchronous: config.settings.sqliteSynchronous)
        // First in the group with the store, so it stops after everything that commits.
        return OpenedStore(store: store, service: RoleService(name: "sqlite-checkpoint") { flag in store.checkpoint { !flag.isStopped } })
    }

    /// The store for a program without a service group (the benchmark): a PostgreSQL pool runs on its own.
    package static func openStandalone(_ config: SwitchboardConfig, logger: Logger) throws -> any ConversationStore & AdminStore {
        let url = config.settings.storeURL
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try PostgresStore.standalone(url: url, logger: logger)
        }
        let store = try SQLiteStore(path: Setup.sqlitePath(config), synchronous: config.settings.sqliteSynchronous)
        store.checkpointInBackground()
        return store
    }

    /// For a command that reads or acts once (`switchboard parked`, `timeline`, ...): the store, open
    /// while `body` runs, its pool (if any) run beside it and stopped after.
    package static func with<T: Sendable>(
        _ config: SwitchboardConfig, logger: Logger, _ body: @Sendable (any ConversationStore & AdminStore) async throws -> T
    ) async throws -> T {
        let opened = try await open(config, logger: logger)
        guard let service = opened.service else { return try await body(opened.store) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            defer { group.cancelAll() }
            return try await body(opened.store)
        }
    }

    /// A conversation, found by any endpoint's ticket id, as an administrator reads it.
    package static func describeConversation(config: SwitchboardConfig, endpoint: String, ticket: String, logger: Logger) async throws -> String? {
        let read = try await with(config, logger: logger) { store in
            try await Offload.run { () throws -> (ConversationSnapshot, [TimelineEntry])? in
                guard let c = try store.find([TicketRef(endpoint, ticket)]) else { return nil }
                return (c, try store.timeline(conversationId: c.id))
            }
        }
        guard let (c, timeline) = read else { return nil }
        let time = DateFormatter()
        time.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        time.timeZone = TimeZone(identifier: "UTC")
        var lines = ["conversation \(c.id) (version \(c.version))"]
        lines.append("  tickets:    " + c.references.sorted { $0.key < $1.key }.map { "\($0.key)/\($0.value)" }.joined(separator: ", "))
        for (name, value) in c.shownAttributes.sorted(by: { $0.key < $1.key }) {
            lines.append("  attribute:  \(name) = \(value.serializedString)")
        }
        for (name, value) in c.shownCounters.sorted(by: { $0.key < $1.key }) {
            lines.append("  counter:    \(name) = \(value)")
        }
        lines.append("  timeline (UTC):")
        for e in timeline {
            let who = e.who.map { " by \($0)" } ?? ""
            let endpoint = e.endpoint.map { " [\($0)]" } ?? ""
            lines.append("    \(time.string(from: e.at))  \(e.kind.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0))\(e.detail)\(endpoint)\(who)")
        }
        return lines.joined(separator: "\n")
    }

    /// `switchboard failed`: how many outbound messages were refused with no rule to handle it, and the newest.
    package static func describeFailed(config: SwitchboardConfig, limit: Int, logger: Logger) async throws -> String {
        let (count, newest) = try await with(config, logger: logger) { store in
            try await Offload.run { try store.failedOutbound(limit: limit) }
        }
        let time = DateFormatter()
        time.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        time.timeZone = TimeZone(identifier: "UTC")
        var lines = ["\(count) outbound message(s) failed (refused, and no rule handled the refusal)"]
        for f in newest {
            let o = f.outbound
            lines.append("  \(time.string(from: f.failedAt))  \(o.type) to \(o.target)  \(o.messageId)  conversation \(o.conversationId)  rule \(o.rule)")
            lines.append("      ack: \(f.failure)")
        }
        return lines.joined(separator: "\n")
    }
}

/// A store as `Stores.open` opened it, with the service it needs running (PostgreSQL's connection pool).
package struct OpenedStore: Sendable {
    package let store: any ConversationStore & AdminStore
    package let service: (any Service)?
}
