import Admin
import Delivery
import Foundation
import Ingress
import Logging
import Operations
import Rules
import ServiceLifecycle
import Store
import Roles
import StoreRole
import Telemetry

/// How a process reaches the conversation store.
package enum StoreAccess: Sendable {
    /// Owns the database and serves it to other processes over the broker (the store role).
    case serve
    /// Through the store role over the broker (a stateless worker).
    case remote
    /// Opens the database for reading beside its owner, serving nothing (`switchboard admin`).
    case read
    /// Needs no store (`switchboard ingress`).
    case none
}

/// Which roles a process runs: `switchboard run` is all of them; `intake`, `worker`, `store` and
/// `admin serve` one each. Every process also serves its metrics and health probes.
package struct RoleSet: Sendable {
    package var intake: Bool
    package var store: StoreAccess
    /// Partitions this process's workers consume; empty: no worker.
    package var partitions: [Int]
    package var workerThreads: Int
    /// Take a share of the partitions that the live workers agree on, instead of `partitions`.
    package var coordinated: Bool
    /// The web UI and the JSON API (when the configuration has an admin section).
    package var admin: Bool
    /// The webhook listener (when the configuration has an ingress section).
    package var ingress: Bool
    /// REST delivery (when an endpoint has a rest section).
    package var delivery: Bool
    /// The role's name in its metrics listener's default port and in the status lines.
    package var name: String

    package init(
        name: String, intake: Bool = false, store: StoreAccess, partitions: [Int] = [], workerThreads: Int = 0,
        coordinated: Bool = false, admin: Bool = false, ingress: Bool = false, delivery: Bool = false
    ) {
        self.name = name
        self.ingress = ingress
        self.delivery = delivery
        self.intake = intake
        self.store = store
        self.partitions = partitions
        self.workerThreads = workerThreads
        self.coordinated = coordinated
        self.admin = admin
    }

    /// `switchboard run`: store, intake, workers and the admin in one process. Its workers take their
    /// share of the partitions like any `switchboard worker` (all of them when alone), so more worker
    /// processes can join it.
    package static func all(_ config: SwitchboardConfig) -> RoleSet {
        RoleSet(name: "run", intake: true, store: .serve, partitions: Array(0..<config.settings.partitions),
              workerThreads: config.settings.workers, coordinated: true, admin: true, ingress: config.ingress != nil,
              delivery: config.endpoints.values.contains { $0.rest != nil })
    }

    package static let intakeOnly = RoleSet(name: "intake", intake: true, store: .remote)
    package static let storeOnly = RoleSet(name: "store", store: .serve)
    package static let adminOnly = RoleSet(name: "admin", store: .read, admin: true)
    package static let ingressOnly = RoleSet(name: "ingress", store: .none, ingress: true)
    package static let deliveryOnly = RoleSet(name: "delivery", store: .none, delivery: true)

    /// Worker threads for `partitions`, or (coordinated) for the share the live workers agree on.
    package static func workers(_ partitions: [Int], threads: Int, coordinated: Bool) -> RoleSet {
        RoleSet(name: "worker", store: .remote, partitions: partitions, workerThreads: threads, coordinated: coordinated)
    }
}

/// The one builder of a process's services, for every set of roles: the executable and the tests call it
/// and run what it returns in one `ServiceGroup` (`run`).
package enum ServiceBuilder {
    /// The services of `roles`, built from the configuration and not yet running; says on standard output
    /// what the process will do.
    package static func services(_ roles: RoleSet, config: SwitchboardConfig, logger: Logger) async throws -> [any Service] {
        let options = try Setup.brokerOptions(config)
        say("switchboard: broker \(options.redactedCluster)")
        say("switchboard: endpoints \(config.endpointNames.joined(separator: ", ")): ESBs publish to exchange '\(Contract.inboundExchange)' (routing key = endpoint) and consume '\(Contract.outboundQueue("<endpoint>"))'")
        var services: [any Service] = []
        let store: FleetStore?
        var opened: (any ConversationStore & AdminStore)?
        switch roles.store {
        case .serve:
            let (own, pool) = try await open(config, logger: logger)
            opened = own
            services += pool
            let metered = MeteredStore(own, backend: Setup.storeBackend(config))
            say("switchboard: store \(Setup.storeDescription(config)), serving queues '\(Contract.storeQueue)' and '\(Contract.storeMembersQueue)'; bad input goes to queue '\(Contract.parkedQueue)'")
            services += StoreServer.services(config: config, store: metered, parked: own, options: options, logger: logger)
            services.append(Retention.service(config: config, store: own, backend: Setup.storeBackend(config), logger: logger))
            store = metered
        case .remote:
            store = MeteredStore(
                RemoteStore(
                    options: options, timeout: Double(config.settings.storeTimeoutMs) / 1000,
                    maxRequestBytes: config.settings.storeMaxRequestBytes, queueType: config.settings.queueType, logger: logger),
                backend: "remote")
            say("switchboard: store reached through queue '\(Contract.storeQueue)' (the store role)")
        case .read:
            let (own, pool) = try await open(config, logger: logger)
            opened = own
            services += pool
            store = MeteredStore(own, backend: Setup.storeBackend(config))
            say("switchboard: store \(Setup.storeDescription(config)), read beside the store role")
        case .none:
            store = nil
        }
        let workers = min(roles.workerThreads, roles.partitions.count)
        // With workers of its own and the store at hand, intake evaluates its own partitions' messages itself.
        let fused = roles.intake && roles.coordinated && !roles.partitions.isEmpty && config.settings.fuseIntake
        let local = fused ? LocalPartitions() : nil
        if roles.intake, let store {
            services.append(Setup.coordinatedIntakeService(config: config, store: store, local: local, options: options, logger: logger))
        }
        let workerText = roles.coordinated
            ? "up to \(roles.workerThreads) worker thread(s) on this process's share of the \(config.settings.partitions) partitions"
            : "\(workers) worker thread(s) for partitions \(roles.partitions.map(String.init).joined(separator: ","))"
        let running = [roles.store == .serve ? "store" : nil, roles.intake ? "intake" : nil, roles.ingress ? "ingress" : nil, roles.delivery ? "delivery" : nil, roles.partitions.isEmpty ? nil : workerText]
        if !running.compactMap({ $0 }).isEmpty {
            say("switchboard: running \(running.compactMap { $0 }.joined(separator: " and ")); Ctrl-C or SIGTERM stops gracefully")
        }
        if !roles.partitions.isEmpty, let store {
            if roles.coordinated {
                let threads = roles.workerThreads
                services.append(RoleService(name: "coordinator") { flag in
                    Coordinator.workers(config: config, store: store, options: options, threads: threads, logger: logger, local: local).run(stop: flag)
                })
            } else {
                Meters.gauge("switchboard_partitions_owned", [], Double(roles.partitions.count))
                for w in 0..<workers {
                    let mine = stride(from: w, to: roles.partitions.count, by: workers).map { roles.partitions[$0] }
                    services.append(Setup.workerService(
                        config: config, store: store, options: options, logger: logger, partitions: mine, name: "worker-\(w)"))
                }
            }
        }
        Meters.start(config: config)
        // The admin reads the store through its own async interface, not the metered wrapper.
        if roles.admin, config.admin != nil, let opened {
            Readiness.shared.set("admin", ready: false, "starting the web server")
            services.append(try AdminServer.build(config: config, store: opened, logger: logger) { url in
                Readiness.shared.set("admin", ready: true, "serving the web UI and API at \(url)")
                say("switchboard: web UI and API at \(url)")
            })
            services.append(AdminServer.storeProbe(config: config, store: opened))
        }
        if roles.delivery {
            let handler = try RestDeliveryHandler(config: config, logger: logger)
            say("switchboard: delivering \(handler.endpoints.joined(separator: ", ")) over REST (their answers come back as acks)")
            services.append(RoleService(name: "delivery") { flag in
                ConsumerLoop(name: "delivery", config: config, options: options, handler: handler, stopFlag: flag, logger: logger).run()
                handler.shutdown()
            })
        }
        if roles.ingress {
            services += try IngressServer.build(config: config, logger: logger) { url in
                say("switchboard: webhooks at \(url)hooks/<endpoint>")
            }
        }
        // Queue depths and ages come from the processes that serve the store (one place per deployment).
        services += try Ops.services(config: config, role: roles.name, queues: roles.store == .serve, logger: logger)
        return services
    }

    /// The store, and its pool first among the services: a group stops its services in reverse order,
    /// so the pool stops after everything that uses the store.
    private static func open(_ config: SwitchboardConfig, logger: Logger) async throws -> (any ConversationStore & AdminStore, [any Service]) {
        let opened = try await Stores.open(config, logger: logger)
        return (opened.store, opened.service.map { [$0] } ?? [])
    }

    /// Builds the services of `roles` and runs them in one `ServiceGroup` until SIGTERM or SIGINT.
    package static func run(_ roles: RoleSet, config: SwitchboardConfig, logger: Logger) async throws {
        // Two `switchboard run` with SQLite stores of their own on one vhost would split conversations.
        if roles.store == .serve, roles.intake, Setup.storeBackend(config) == "sqlite" {
            try await Setup.refuseASecondEmbeddedStore(config, logger: logger)
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: try await services(roles, config: config, logger: logger).map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        say("switchboard: stopped")
    }
}
