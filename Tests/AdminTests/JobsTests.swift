import AMQP
import Foundation
import Logging
import ServiceLifecycle
import Store
import Roles
import Testing

@testable import Admin

/// The admin's parked-message jobs run inside a Service: at graceful shutdown a running job stops after
/// the message at hand, nothing is lost (what it did not reach stays parked), and the service returns
/// only once no job runs; a job asked for afterwards is refused, with every chosen message still parked.
@Suite struct JobsTests {
    @Test func aJobInFlightAtShutdownEndsCleanlyAndTheRestStaysParked() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-jobs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteStore(path: dir.appendingPathComponent("s.sqlite").path)
        let total = 5_000
        let rows = (0..<total).map { n in
            ParkedRow(
                id: "p\(n)", parkedAt: Date(), reason: "bad json", reasonGroup: "bad json", stage: "intake", origin: "switchboard",
                endpoint: "customer-a", ticket: nil, messageId: "m\(n)", properties: Data([1, 10, 0]), body: Data("{".utf8))
        }
        try store.park(rows)
        let logger = Logger(label: "jobs-test")
        // Discarding needs no broker; the options are never used to connect.
        let jobs = ParkedJobs(actions: ParkedActions(
            store: store, options: try ConnectionOptions(url: "amqp://guest:guest@localhost:1/", caFile: nil), logger: logger))
        let group = ServiceGroup(services: [jobs], logger: logger)
        let running = Task { try await group.run() }
        let job = jobs.start(replay: false, ids: Set(rows.map(\.id)), who: "test", reason: "shutdown test")
        // Shut down once the job is under way.
        while (jobs.get(job.id)?.done ?? 0) < 10 { try await Task.sleep(for: .milliseconds(5)) }
        await group.triggerGracefulShutdown()
        try await running.value
        let ended = try #require(jobs.get(job.id))
        // Stopped after the message at hand, not run to its end (5,000 discards take seconds).
        #expect(ended.state == "cancelled" && ended.done < total, "\(ended.state) after \(ended.done)")
        let left = try store.parkedTotal()
        #expect(left + ended.discarded == total)
        #expect(try await store.audit(limit: total, withoutConversation: true).count == ended.discarded)
        // After shutdown: refused, nothing touched.
        let late = jobs.start(replay: false, ids: ["p\(total - 1)"], who: "test", reason: "too late")
        #expect(late.state == "failed")
        #expect(late.error?.contains("shutting down") == true)
        #expect(try store.parkedTotal() == left)
    }
}
