import NIOCore
import NIOPosix

/// The one way blocking work leaves Swift concurrency: a rabbitmq-c call (a queue's depth, a replay's
/// publish, a probe of the broker), a bcrypt verification. It runs on this thread pool and the caller's
/// task awaits it, so no event loop and no cooperative thread ever waits on a synchronous call.
///
/// (The role loops are another matter: each is a `RoleService` whose blocking loop owns a thread for the
/// service's life. And the store's synchronous calls are made from those loops only.)
package enum Offload {
    /// More threads than cores: much of the work waits on the network (a broker that does not answer
    /// holds its thread until the connection times out), and sign-ins must not queue behind it.
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: max(8, 2 * System.coreCount))
        pool.start()
        return pool
    }()

    /// Runs `body` on the pool; the calling task waits without holding a thread.
    package static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }

    /// For work that cannot fail.
    package static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        // The pool is never shut down, so `runIfActive` only throws when the task was cancelled before
        // the work started; the work then runs here, on the caller's task, rather than being lost.
        do { return try await pool.runIfActive(body) } catch { return body() }
    }
}
