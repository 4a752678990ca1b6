import Foundation
import ServiceLifecycle
import Synchronization

/// A one-shot flag, set from any thread (a Service's shutdown), read by a loop between blocking calls;
/// a loop with nothing to do waits on it (`wait(until:)`) instead of sleeping in steps.
package final class StopFlag: @unchecked Sendable {
    private let flag = Atomic<Bool>(false)
    /// Guards nothing but the wake-up: `flag` is the state.
    private let condition = NSCondition()
    package init() {}

    package func stop() {
        condition.lock()
        flag.store(true, ordering: .relaxed)
        condition.broadcast()
        condition.unlock()
    }

    package var isStopped: Bool { flag.load(ordering: .relaxed) }

    /// Waits until `deadline` or a stop, whichever comes first; true when stopped.
    @discardableResult
    package func wait(until deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !flag.load(ordering: .relaxed), Date() < deadline {
            _ = condition.wait(until: deadline)
        }
        return flag.load(ordering: .relaxed)
    }
}

/// Runs a blocking role loop (rabbitmq-c is blocking) on a thread of its own, as a Service: graceful
/// shutdown or cancellation sets the stop flag, and `run()` returns once the loop has drained and exited.
package struct RoleService: Service {
    package let name: String
    private let body: @Sendable (StopFlag) -> Void

    package init(name: String, body: @escaping @Sendable (StopFlag) -> Void) {
        self.name = name
        self.body = body
    }

    package func run() async throws {
        let flag = StopFlag()
        let name = self.name
        let body = self.body
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                    let thread = Thread {
                        body(flag)
                        done.resume()
                    }
                    thread.name = "sb-\(name)"
                    thread.start()
                }
            } onCancel: {
                flag.stop()
            }
        } onGracefulShutdown: {
            flag.stop()
        }
    }
}
