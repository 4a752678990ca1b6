import AMQP
import Crypto
import Foundation
import JSONPath
import Logging
import Rules
import ServiceLifecycle
import Store
import Synchronization

/// What every process sets up from its configuration: the configuration itself, the broker's connection
/// options, the store it opens, and the services of each role (built into a process by the Wiring module's
/// `ServiceBuilder`).
package enum Setup {
    /// Reads every *.yaml / *.yml file of a directory (sorted by name) and validates the whole.
    package static func loadConfig(
        directory: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> SwitchboardConfig {
        let url = URL(fileURLWithPath: directory)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: url.path)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        } catch {
            throw ConfigErrors(errors: [ConfigError(SourceLocation(file: directory, line: 0), "cannot read the configuration directory: \(error.localizedDescription)")])
        }
        guard !names.isEmpty else {
            throw ConfigErrors(errors: [ConfigError(SourceLocation(file: directory, line: 0), "no .yaml files in the configuration directory")])
        }
        var files: [(name: String, text: String)] = []
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            do {
                files.append((path, try String(contentsOfFile: path, encoding: .utf8)))
            } catch {
                throw ConfigErrors(errors: [ConfigError(SourceLocation(file: path, line: 0), "cannot read: \(error.localizedDescription)")])
            }
        }
        var config = try ConfigLoader.load(files: files, environment: environment)
        // Names and contents, not where the directory is: the same configuration hashes the same on every machine.
        var hash = SHA256()
        for file in files {
            hash.update(data: Data((file.name as NSString).lastPathComponent.utf8))
            hash.update(data: Data([0]))
            hash.update(data: Data(file.text.utf8))
            hash.update(data: Data([0]))
        }
        config.source.files = files.map(\.name)
        config.source.contentHash = hash.finalize().map { String(format: "%02x", $0) }.joined()
        config.source.loadedAt = Date()
        return config
    }

    package static func brokerOptions(_ config: SwitchboardConfig) throws -> ConnectionOptions {
        var options = try ConnectionOptions(url: config.settings.brokerURL, caFile: config.settings.tlsCAFile)
        options.heartbeatSeconds = config.settings.heartbeatSeconds
        return options
    }

    /// The database `store_url` names, opened by the process that owns it (the store role, admin commands):
    /// the conversations, and the administrator's reads and the parked table beside them. A PostgreSQL
    /// store comes with its connection pool as a service, to run before (and stop after) those that use it.
    package static func openStore(_ config: SwitchboardConfig, logger: Logger) async throws -> OpenedStore {
        let url = config.settings.storeURL
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            let store = try PostgresStore(url: url, logger: logger)
            try await store.prepare()
            return OpenedStore(store: store, service: store)
        }
        let store = try SQLiteStore(path: sqlitePath(config), synchronous: config.settings.sqliteSynchronous)
        // First in the group with the store, so it stops after everything that commits.
        return OpenedStore(store: store, service: RoleService(name: "sqlite-checkpoint") { flag in store.checkpoint { !flag.isStopped } })
    }

    /// The store for a program without a service group (the benchmark): a PostgreSQL pool runs on its own.
    package static func openStandaloneStore(_ config: SwitchboardConfig, logger: Logger) throws -> any ConversationStore & AdminStore {
        let url = config.settings.storeURL
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try PostgresStore.standalone(url: url, logger: logger)
        }
        let store = try SQLiteStore(path: sqlitePath(config), synchronous: config.settings.sqliteSynchronous)
        store.checkpointInBackground()
        return store
    }

    /// For a command that reads or acts once (`switchboard parked`, `timeline`, ...): the store, open
    /// while `body` runs, its pool (if any) run beside it and stopped after.
    package static func withStore<T: Sendable>(
        _ config: SwitchboardConfig, logger: Logger, _ body: @Sendable (any ConversationStore & AdminStore) async throws -> T
    ) async throws -> T {
        let opened = try await openStore(config, logger: logger)
        guard let service = opened.service else { return try await body(opened.store) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await service.run() }
            defer { group.cancelAll() }
            return try await body(opened.store)
        }
    }

    package static func sqlitePath(_ config: SwitchboardConfig) -> String {
        let url = config.settings.storeURL
        if url.hasPrefix("sqlite:"), url.count > "sqlite:".count { return String(url.dropFirst("sqlite:".count)) }
        return (config.settings.dataDir as NSString).appendingPathComponent("switchboard.sqlite")
    }

    /// The backend label of the store metrics.
    package static func storeBackend(_ config: SwitchboardConfig) -> String {
        config.settings.storeURL.hasPrefix("postgres") ? "postgres" : "sqlite"
    }

    /// The store for a log line: the SQLite file, or the PostgreSQL URL without its password.
    package static func storeDescription(_ config: SwitchboardConfig) -> String {
        config.settings.storeURL.hasPrefix("sqlite") ? sqlitePath(config) : ConnectionOptions.redact(config.settings.storeURL)
    }

    /// The store role's services: one loop answers `sb.store` requests from workers in other processes,
    /// another `sb.store.members` (heartbeats and leaves), so membership never waits behind commits.
    package static func storeServices(
        config: SwitchboardConfig, store: FleetStore, parked: (any ParkedStore)?, options: ConnectionOptions, logger: Logger
    ) -> [RoleService] {
        // One SQLite file has one owner: a second store process waits (exclusive consumer) as a standby.
        let exclusive = !(config.settings.storeURL.hasPrefix("postgres"))
        var services = [("store", Contract.storeQueue), ("store-members", Contract.storeMembersQueue)].map { name, queue in
            RoleService(name: name) { flag in
                ConsumerLoop(
                    name: name, config: config, options: options,
                    handler: StoreServer(
                        store: store, exclusive: exclusive, logger: logger, queue: queue, maxReplyBytes: config.settings.storeMaxRequestBytes),
                    stopFlag: flag, logger: logger
                ).run()
            }
        }
        // What arrives in sb.parked moves into the store's parked table (see ParkedIntakeHandler).
        if let parked {
            services.append(RoleService(name: "parked") { flag in
                ConsumerLoop(
                    name: "parked", config: config, options: options,
                    handler: ParkedIntakeHandler(store: parked, config: config, switchboardUser: options.user, exclusive: exclusive, logger: logger),
                    // Parked messages may be as large as the broker allows, and they are few: a small window.
                    stopFlag: flag, logger: logger, prefetch: 8
                ).run()
            })
        }
        return services
    }

    /// Intake sharing the inbound queues with the other live intakes (through the store's membership). With
    /// `local` (`switchboard run`), it evaluates the messages of this process's partitions where they arrive.
    package static func coordinatedIntakeService(
        config: SwitchboardConfig, store: FleetStore, local: LocalPartitions?, options: ConnectionOptions, logger: Logger
    ) -> RoleService {
        RoleService(name: "intake") { flag in
            Coordinator.intakes(config: config, store: store, options: options, logger: logger) { queues in
                if let local {
                    return FusedIntakeHandler(
                        config: config, store: store, local: local, threads: config.settings.workers, logger: logger, queues: queues)
                }
                return IntakeHandler(config: config, logger: logger, queues: queues)
            }.run(stop: flag)
        }
    }

    /// One worker thread for the given partitions. Each partition has exactly one consumer in the
    /// process, so one ticket's messages stay in order whatever the number of threads.
    package static func workerService(
        config: SwitchboardConfig, store: FleetStore, options: ConnectionOptions, logger: Logger,
        partitions: [Int], name: String = "worker"
    ) -> RoleService {
        RoleService(name: name) { flag in
            let handler = WorkerHandler(config: config, store: store, partitions: partitions, logger: logger)
            ConsumerLoop(name: name, config: config, options: options, handler: handler, stopFlag: flag, logger: logger).run()
        }
    }

    /// Two `switchboard run` with SQLite stores of their own on one vhost would split conversations: each
    /// decides on its own file, and whichever consumes a partition's queue applies the ticket's next update
    /// to a conversation the other holds. So `run` does not start while another store serves `sb.store`
    /// (waiting a few seconds for one that is shutting down). A second process on the *same* store is a
    /// `switchboard store` standby, which waits instead; a fleet shares one PostgreSQL store.
    package static func refuseASecondEmbeddedStore(_ config: SwitchboardConfig, logger: Logger, patience: TimeInterval = 10) async throws {
        let options = try brokerOptions(config)
        let deadline = Date().addingTimeInterval(patience)
        while true {
            let consumers: Int = try await Offload.run {
                let c = try Connection(options, logger: logger)
                defer { c.close() }
                try Topology.declareStoreQueue(on: c, queueType: config.settings.queueType)
                return try c.queueDepth(Contract.storeQueue).consumers
            }
            if consumers == 0 { return }
            if Date() >= deadline {
                throw StartRefused(
                    "another Switchboard store already serves '\(Contract.storeQueue)' on this broker's vhost: a second "
                        + "`switchboard run` with its own SQLite store (\(sqlitePath(config))) would split conversations between "
                        + "the two files. Stop the other one, give this one a vhost of its own (broker_url), or run "
                        + "`switchboard worker`/`intake` beside the running store")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

/// Status lines for the person who started us, written unbuffered so they show at once in a pipe or log;
/// with settings.log_format `json`, as JSON objects like the log's (a log shipper reads both streams).
package func say(_ line: String) {
    var text = line
    if StatusLines.json.load(ordering: .relaxed) {
        let time = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        text = #"{"time":"\#(time)","level":"notice","label":"switchboard","message":\#(JSON.string(line).serializedString)}"#
    }
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

package enum StatusLines {
    package static let json = Atomic<Bool>(false)
}

extension Setup {
    /// A conversation, found by any endpoint's ticket id, as an administrator reads it.
    package static func describeConversation(config: SwitchboardConfig, endpoint: String, ticket: String, logger: Logger) async throws -> String? {
        let read = try await withStore(config, logger: logger) { store in
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
        for (name, value) in c.attributes.sorted(by: { $0.key < $1.key }) {
            lines.append("  attribute:  \(name) = \(value.serializedString)")
        }
        for (name, value) in c.counters.sorted(by: { $0.key < $1.key }) {
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
        let (count, newest) = try await withStore(config, logger: logger) { store in
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

/// Why a process would not start, for the operator.
package struct StartRefused: Error, CustomStringConvertible {
    package var description: String
    init(_ d: String) { description = d }
}

/// A store as `Setup.openStore` opened it, with the service it needs running (PostgreSQL's connection pool).
package struct OpenedStore: Sendable {
    package let store: any ConversationStore & AdminStore
    package let service: (any Service)?
}
