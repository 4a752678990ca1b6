import Foundation
import ServiceLifecycle

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
