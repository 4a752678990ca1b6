import Foundation
import Logging
import Rules
import ServiceLifecycle
import Store
import Roles
import Telemetry

/// The admin's part of `/health/ready`: the store it reads answers (one ticket lookup by key, every
/// `interval`). Pages and the API need it; a store that does not answer makes the admin process unready.
struct StoreProbe: Service {
    let store: any AdminStore
    let endpoint: String
    let interval: Duration
    let health: Readiness

    func run() async throws {
        await cancelWhenGracefulShutdown {
            defer { health.remove("admin-store") }
            while !Task.isCancelled {
                do {
                    _ = try await store.tickets("readiness-probe", endpoints: [endpoint])
                    health.set("admin-store", ready: true, "the store answers")
                } catch {
                    health.set("admin-store", ready: false, "the store does not answer: \(error)")
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}

extension AdminServer {
    /// The store probe for a process that serves the admin.
    package static func storeProbe(config: SwitchboardConfig, store: any AdminStore, health: Readiness = .shared) -> any Service {
        health.set("admin-store", ready: false, "not asked yet")
        return StoreProbe(store: store, endpoint: config.endpointNames.first ?? "-", interval: .seconds(5), health: health)
    }
}
