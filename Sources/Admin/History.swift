import Foundation
import Rules
import ServiceLifecycle
import Store
import Synchronization

/// One endpoint at one sample of the endpoints page's charts: queue depths and the oldest message's age
/// from the broker, and what the timeline says happened since the sample before.
struct EndpointSample: Sendable {
    var at: Date
    var inbound: Int?
    var outbound: Int?
    var oldestAge: TimeInterval?
    /// Messages from this endpoint decided since the sample before (the timeline's received entries).
    var received = 0
    /// Messages the rules sent to it since the sample before (the timeline's sent entries).
    var sent = 0
    /// p95 of its messages' time from intake to decision, in ms (nil: none received).
    var p95Ms: Int?
    /// Whether `received` and `sent` were counted (not on the first sample: it marks where counting starts).
    var counted = false
}

/// The last hour of samples per endpoint, kept in the admin process's memory (no Prometheus needed to see
/// them; a restart starts them again).
final class EndpointHistory: Sendable {
    let intervalMs: Int
    let keep: Int
    /// The most timeline messages one sample reads; past it, the counts of that sample are lower bounds.
    static let maxMessagesPerSample = 20_000
    private let state = Mutex<(samples: [String: [EndpointSample]], cursor: Int64?, capped: Set<Date>)>(([:], nil, []))

    init(intervalMs: Int) {
        self.intervalMs = intervalMs
        keep = max(2, min(720, 3_600_000 / intervalMs + 1))
    }

    func samples(_ endpoint: String) -> [EndpointSample] { state.withLock { $0.samples[endpoint] ?? [] } }
    var capped: Bool { state.withLock { !$0.capped.isEmpty } }

    func record(_ taken: [String: EndpointSample], cursor: Int64?, capped: Bool) {
        state.withLock { s in
            for (name, sample) in taken {
                var list = s.samples[name] ?? []
                list.append(sample)
                if list.count > keep { list.removeFirst(list.count - keep) }
                s.samples[name] = list
            }
            if let cursor { s.cursor = cursor }
            let oldest = s.samples.values.compactMap { $0.first?.at }.min() ?? .distantPast
            s.capped = s.capped.filter { $0 >= oldest }
            if capped, let at = taken.values.first?.at { s.capped.insert(at) }
        }
    }

    var cursor: Int64? { state.withLock { $0.cursor } }
}

/// Takes the charts' samples every `admin.chart_interval` (in the admin's service group).
struct HistorySampler: Service {
    let services: AdminServices

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    await sample()
                    try await Task.sleep(for: .milliseconds(services.history.intervalMs))
                }
            }
        } catch is CancellationError {
            // Stopping: the samples go with the process.
        }
    }

    func sample(now: Date = Date()) async {
        let h = await services.health()
        // The timeline since the last sample, newest first; the first sample only marks where it starts.
        let since = services.history.cursor
        var taken: [String: EndpointSample] = [:]
        for e in h.endpoints {
            taken[e.name] = EndpointSample(at: now, inbound: e.inbound, outbound: e.outbound, oldestAge: e.oldestAge, counted: since != nil)
        }
        var newest: Int64?
        var capped = false
        var latencies: [String: [Int]] = [:]
        do {
            let complete = try await services.eachRecent(max: since == nil ? 1 : EndpointHistory.maxMessagesPerSample) { g in
                if newest == nil { newest = g.cursor }
                guard let since, g.cursor > since else { return false }
                for e in g.entries {
                    switch e.kind {
                    case .received:
                        guard let name = e.endpoint else { continue }
                        taken[name]?.received += 1
                        if let ms = e.sinceIntakeMs { latencies[name, default: []].append(ms) }
                    case .sent:
                        if let name = e.endpoint { taken[name]?.sent += 1 }
                    default: continue
                    }
                }
                return true
            }
            capped = since != nil && !complete
            for (name, values) in latencies where !values.isEmpty {
                let sorted = values.sorted()
                taken[name]?.p95Ms = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.95).rounded(.up)) - 1)]
            }
        } catch {
            services.logger.warning("admin: the charts' sample could not read the timeline", metadata: ["sb.error": "\(error)"])
        }
        services.history.record(taken, cursor: newest ?? since, capped: capped)
    }
}
