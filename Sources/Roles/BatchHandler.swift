import AMQP
import Foundation
import Logging
import Rules
import Synchronization
import Telemetry

/// A message to publish as the result of a batch.
package struct Outgoing: Sendable {
    package var exchange: String
    package var routingKey: String
    package var message: Message
    /// Return it (and park it) when no queue takes it. Off for replies to a caller that may have gone.
    package var mandatory: Bool
    /// Published with our broker user as `user_id` (which the broker checks): our own parking, so that
    /// replay can tell it from what the broker dead-letters into `sb.parked` on an ESB's behalf.
    package var signed: Bool

    package init(exchange: String, routingKey: String, message: Message, mandatory: Bool = true, signed: Bool = false) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.message = message
        self.mandatory = mandatory
        self.signed = signed
    }

    /// The message as it is published by a connection of `user`.
    package func message(as user: String) -> Message {
        guard signed else { return message }
        var m = message
        m.properties.userId = user
        return m
    }
}

/// Processes a batch of deliveries into messages to publish. Bad input is turned into parked messages
/// by the handler itself; a thrown error means "infrastructure trouble": the batch is requeued whole.
package protocol BatchHandler: AnyObject {
    /// Queue name -> consumer tag to use; the handler tells its deliveries apart by tag.
    var queues: [(queue: String, tag: String)] { get }
    /// Consume exclusively: the broker refuses a second consumer on the same queue (work partitions:
    /// one ticket's messages must never be processed by two workers at once).
    var exclusive: Bool { get }
    func handle(_ batch: [Delivery]) throws -> [Outgoing]
    /// Called once a batch's outgoing messages are confirmed and the batch acked.
    func confirmed(_ batch: [Delivery])
}

extension BatchHandler {
    package func confirmed(_ batch: [Delivery]) {}
}
