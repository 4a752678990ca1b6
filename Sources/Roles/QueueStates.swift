import AMQP
import Foundation
import Logging

/// Depths and consumers of named queues, exactly as the broker has them now (a passive declare each:
/// the management API's figures lag by its statistics interval, 5 s by default). Blocking: from a thread.
package struct QueueStates: Sendable {
    package var options: ConnectionOptions
    package var logger: Logger

    package init(options: ConnectionOptions, logger: Logger) {
        var o = options
        o.connectionName = "switchboard-admin"
        self.options = o
        self.logger = logger
    }

    /// Each queue that exists, with its messages and consumers; a queue that does not exist is left out.
    package func read(_ names: [String]) throws -> [String: (messages: Int, consumers: Int)] {
        var out: [String: (messages: Int, consumers: Int)] = [:]
        var c = try Connection(options, logger: logger)
        defer { c.close() }
        for name in names {
            do {
                out[name] = try c.queueDepth(name)
            } catch {
                // A missing queue closes the channel: go on with a new connection.
                c.close()
                c = try Connection(options, logger: logger)
            }
        }
        return out
    }
}
