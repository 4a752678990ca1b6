import AMQP
import Crypto
import Foundation
import JSONPath
import Logging
import Rules
import ServiceLifecycle
import Store
import Synchronization

/// Wiring: the same roles whether they run together (`switchboard run`) or, later, one per process.
package enum Application {
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

    /// The database `store_url` names, opened by the process that owns it (the store role, admin commands).
    package static func openStore(_ config: SwitchboardConfig, logger: Logger) throws -> ConversationStore {
        let url = config.settings.storeURL
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            return try PostgresStore(url: url, logger: logger)
        }
        return try SQLiteStore(path: sqlitePath(config), synchronous: config.settings.sqliteSynchronous)
    }

    static func sqlitePath(_ config: SwitchboardConfig) -> String {
        let url = config.settings.storeURL
        if url.hasPrefix("sqlite:"), url.count > "sqlite:".count { return String(url.dropFirst("sqlite:".count)) }
        return (config.settings.dataDir as NSString).appendingPathComponent("switchboard.sqlite")
    }

    /// The backend label of the store metrics.
    static func storeBackend(_ config: SwitchboardConfig) -> String {
        config.settings.storeURL.hasPrefix("postgres") ? "postgres" : "sqlite"
    }

    /// The store for a log line: the SQLite file, or the PostgreSQL URL without its password.
    static func storeDescription(_ config: SwitchboardConfig) -> String {
        config.settings.storeURL.hasPrefix("sqlite") ? sqlitePath(config) : ConnectionOptions.redact(config.settings.storeURL)
    }

    /// The store role's services: one loop answers `sb.store` requests from workers in other processes,
    /// another `sb.store.members` (heartbeats and leaves), so membership never waits behind commits.
    package static func storeServices(
        config: SwitchboardConfig, store: ConversationStore, options: ConnectionOptions, logger: Logger
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
        if let parked = MeteredStore.unwrapped(store) as? ParkedStore {
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
    static func coordinatedIntakeService(
        config: SwitchboardConfig, store: ConversationStore, local: LocalPartitions?, options: ConnectionOptions, logger: Logger
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
        config: SwitchboardConfig, store: ConversationStore, options: ConnectionOptions, logger: Logger,
        partitions: [Int], name: String = "worker"
    ) -> RoleService {
        RoleService(name: name) { flag in
            let handler = WorkerHandler(config: config, store: store, partitions: partitions, logger: logger)
            ConsumerLoop(name: name, config: config, options: options, handler: handler, stopFlag: flag, logger: logger).run()
        }
    }

    /// How a process reaches the conversation store.
    package enum StoreAccess: Sendable {
        /// Owns the database and serves it to other processes over the broker (the store role).
        case serve
        /// Through the store role over the broker (a stateless worker).
        case remote
        /// Opens the database for reading beside its owner, serving nothing (`switchboard admin`).
        case read
    }

    /// Which roles a process runs. `switchboard run` is all of them; `intake`, `worker` and `store` one each.
    package struct Roles: Sendable {
        package var intake: Bool
        package var store: StoreAccess
        /// Partitions this process's workers consume; empty: no worker.
        package var partitions: [Int]
        package var workerThreads: Int
        /// Take a share of the partitions that the live workers agree on, instead of `partitions`.
        package var coordinated: Bool

        package init(intake: Bool, store: StoreAccess, partitions: [Int], workerThreads: Int, coordinated: Bool = false) {
            self.intake = intake
            self.store = store
            self.partitions = partitions
            self.workerThreads = workerThreads
            self.coordinated = coordinated
        }
    }

    /// `switchboard run`: store, intake and workers in one process, until SIGTERM or SIGINT. Its workers
    /// take their share of the partitions like any `switchboard worker` (all of them when alone), so more
    /// worker processes can join it.
    package static func runAll(
        config: SwitchboardConfig, logger: Logger, extra: @Sendable (ConversationStore?) throws -> [any Service] = { _ in [] }
    ) async throws {
        if storeBackend(config) == "sqlite" { try await refuseASecondEmbeddedStore(config, logger: logger) }
        try await run(
            Roles(intake: true, store: .serve, partitions: Array(0..<config.settings.partitions),
                  workerThreads: config.settings.workers, coordinated: true),
            config: config, logger: logger, extra: extra)
    }

    /// Two `switchboard run` with SQLite stores of their own on one vhost would split conversations: each
    /// decides on its own file, and whichever consumes a partition's queue applies the ticket's next update
    /// to a conversation the other holds. So `run` does not start while another store serves `sb.store`
    /// (waiting a few seconds for one that is shutting down). A second process on the *same* store is a
    /// `switchboard store` standby, which waits instead; a fleet shares one PostgreSQL store.
    static func refuseASecondEmbeddedStore(_ config: SwitchboardConfig, logger: Logger, patience: TimeInterval = 10) async throws {
        let options = try brokerOptions(config)
        let deadline = Date().addingTimeInterval(patience)
        while true {
            // rabbitmq-c blocks: on a thread of its own, not a concurrency thread.
            let consumers: Int = try await withCheckedThrowingContinuation { k in
                Thread {
                    k.resume(with: Result {
                        let c = try Connection(options, logger: logger)
                        defer { c.close() }
                        try Topology.declareStoreQueue(on: c, queueType: config.settings.queueType)
                        return try c.queueDepth(Contract.storeQueue).consumers
                    })
                }.start()
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

    /// Runs the given roles with the same code whichever process they are in. `extra` adds services that
    /// live in modules above this one (the admin's HTTP server), given the store this process opened.
    package static func run(
        _ roles: Roles, config: SwitchboardConfig, logger: Logger,
        extra: @Sendable (ConversationStore?) throws -> [any Service] = { _ in [] }
    ) async throws {
        let options = try brokerOptions(config)
        say("switchboard: broker \(options.redactedCluster)")
        say("switchboard: endpoints \(config.endpointNames.joined(separator: ", ")): ESBs publish to exchange '\(Contract.inboundExchange)' (routing key = endpoint) and consume '\(Contract.outboundQueue("<endpoint>"))'")
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let store: ConversationStore
        switch roles.store {
        case .serve:
            let owned = MeteredStore(try openStore(config, logger: logger), backend: storeBackend(config))
            say("switchboard: store \(storeDescription(config)), serving queues '\(Contract.storeQueue)' and '\(Contract.storeMembersQueue)'; bad input goes to queue '\(Contract.parkedQueue)'")
            services += storeServices(config: config, store: owned, options: options, logger: logger).map { .init(service: $0) }
            services.append(.init(service: Retention.service(config: config, store: owned, logger: logger)))
            store = owned
        case .remote:
            store = MeteredStore(
                RemoteStore(
                    options: options, timeout: Double(config.settings.storeTimeoutMs) / 1000,
                    maxRequestBytes: config.settings.storeMaxRequestBytes, queueType: config.settings.queueType, logger: logger),
                backend: "remote")
            say("switchboard: store reached through queue '\(Contract.storeQueue)' (the store role)")
        case .read:
            store = MeteredStore(try openStore(config, logger: logger), backend: storeBackend(config))
            say("switchboard: store \(storeDescription(config)), read beside the store role")
        }
        let workers = min(roles.workerThreads, roles.partitions.count)
        // With workers of its own and the store at hand, intake evaluates its own partitions' messages itself.
        let fused = roles.intake && roles.coordinated && !roles.partitions.isEmpty && config.settings.fuseIntake
        let local = fused ? LocalPartitions() : nil
        if roles.intake {
            services.append(.init(service: coordinatedIntakeService(config: config, store: store, local: local, options: options, logger: logger)))
        }
        let workerText = roles.coordinated
            ? "up to \(roles.workerThreads) worker thread(s) on this process's share of the \(config.settings.partitions) partitions"
            : "\(workers) worker thread(s) for partitions \(roles.partitions.map(String.init).joined(separator: ","))"
        let running = [roles.store == .serve ? "store" : nil, roles.intake ? "intake" : nil, roles.partitions.isEmpty ? nil : workerText]
        if !running.compactMap({ $0 }).isEmpty {
            say("switchboard: running \(running.compactMap { $0 }.joined(separator: " and ")); Ctrl-C or SIGTERM stops gracefully")
        }
        if !roles.partitions.isEmpty {
            if roles.coordinated {
                let threads = roles.workerThreads
                services.append(.init(service: RoleService(name: "coordinator") { flag in
                    Coordinator.workers(config: config, store: store, options: options, threads: threads, logger: logger, local: local).run(stop: flag)
                }))
            } else {
                Meters.gauge("switchboard_partitions_owned", [], Double(roles.partitions.count))
                for w in 0..<workers {
                    let mine = stride(from: w, to: roles.partitions.count, by: workers).map { roles.partitions[$0] }
                    services.append(.init(service: workerService(
                        config: config, store: store, options: options, logger: logger, partitions: mine, name: "worker-\(w)")))
                }
            }
        }
        Meters.start(config: config)
        // The admin's server reads the store through its own async interface, not the metered wrapper.
        let unwrapped = MeteredStore.unwrapped(store)
        for service in try extra(roles.store == .serve || roles.store == .read ? unwrapped : nil) { services.append(.init(service: service)) }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        say("switchboard: stopped")
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

extension Application {
    /// A conversation, found by any endpoint's ticket id, as an administrator reads it.
    package static func describeConversation(config: SwitchboardConfig, endpoint: String, ticket: String, logger: Logger) throws -> String? {
        let store = try openStore(config, logger: logger)
        guard let c = try store.find([TicketRef(endpoint, ticket)]) else { return nil }
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
        for e in try store.timeline(conversationId: c.id) {
            let who = e.who.map { " by \($0)" } ?? ""
            let endpoint = e.endpoint.map { " [\($0)]" } ?? ""
            lines.append("    \(time.string(from: e.at))  \(e.kind.padding(toLength: 16, withPad: " ", startingAt: 0))\(e.detail)\(endpoint)\(who)")
        }
        return lines.joined(separator: "\n")
    }

    /// `switchboard failed`: how many outbound messages were refused with no rule to handle it, and the newest.
    package static func describeFailed(config: SwitchboardConfig, limit: Int, logger: Logger) throws -> String {
        let (count, newest) = try openStore(config, logger: logger).failedOutbound(limit: limit)
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
