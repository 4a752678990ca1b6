import AMQP
import Logging
import Rules

/// Every exchange, queue and binding Switchboard needs, derived from the configuration. Declared by
/// each role on every (re)connect; declarations are idempotent, so any number of processes may do it.
package struct Topology: Sendable {
    package var endpoints: [String]
    package var partitions: Int
    package var outboundDelays: [Int]
    package var timerDelays: [Int]

    package init(endpoints: [String], partitions: Int, outboundDelays: [Int] = [], timerDelays: [Int] = []) {
        self.endpoints = endpoints
        self.partitions = partitions
        self.outboundDelays = outboundDelays
        self.timerDelays = timerDelays
    }

    package init(config: SwitchboardConfig) {
        endpoints = config.endpointNames
        partitions = config.settings.partitions
        outboundDelays = config.outboundDelays.sorted()
        timerDelays = config.timerDelays.sorted()
    }

    package func declare(on c: Connection) throws(AMQPError) {
        try c.declareExchange(Contract.unroutedExchange, type: "fanout")
        try c.declareQueue(Contract.unroutedQueue)
        try c.bindQueue(Contract.unroutedQueue, exchange: Contract.unroutedExchange, routingKey: "")
        try c.declareExchange(Contract.inboundExchange, arguments: ["alternate-exchange": .string(Contract.unroutedExchange)])
        try c.declareExchange(Contract.outboundExchange)
        try c.declareExchange(Contract.workExchange)
        try c.declareQueue(Contract.parkedQueue)
        try c.declareQueue(Contract.storeQueue)
        for e in endpoints {
            try c.declareQueue(Contract.inboundQueue(e))
            try c.bindQueue(Contract.inboundQueue(e), exchange: Contract.inboundExchange, routingKey: e)
            try c.declareQueue(Contract.outboundQueue(e))
            try c.bindQueue(Contract.outboundQueue(e), exchange: Contract.outboundExchange, routingKey: e)
        }
        // One queue per distinct delay, so every message in a queue has the same TTL and none waits
        // behind a longer one (RabbitMQ expires messages only at the head of a queue).
        for ms in outboundDelays {
            try declareDelay(Contract.outboundDelayExchange(ms), ms: ms, deadLetterTo: Contract.outboundExchange, on: c)
        }
        for ms in timerDelays {
            try declareDelay(Contract.timerDelayExchange(ms), ms: ms, deadLetterTo: Contract.workExchange, on: c)
        }
        for p in 0..<partitions {
            try c.declareQueue(Contract.workQueue(p))
            try c.bindQueue(Contract.workQueue(p), exchange: Contract.workExchange, routingKey: String(p))
        }
    }

    /// A fanout exchange and its queue (`sb.delayq...`); expired messages keep their routing key and go to
    /// `deadLetterTo`, which routes them as if they had just been published there. The queue is a quorum
    /// queue with at-least-once dead-lettering: a waiting delay or timer survives the loss of a node and
    /// is not lost between expiry and its new queue (classic queues dead-letter without confirms).
    private func declareDelay(_ name: String, ms: Int, deadLetterTo target: String, on c: Connection) throws(AMQPError) {
        try c.declareExchange(name, type: "fanout")
        let queue = Contract.delayQueue(forExchange: name)
        try c.declareQueue(queue, arguments: [
            "x-queue-type": .string("quorum"),
            "x-message-ttl": .int(Int64(ms)),
            "x-dead-letter-exchange": .string(target),
            "x-dead-letter-strategy": .string("at-least-once"),
            // At-least-once dead-lettering needs it: a full queue refuses new messages (the publisher's
            // confirm is a nack, the batch is retried) instead of dropping the oldest.
            "x-overflow": .string("reject-publish"),
        ])
        try c.bindQueue(queue, exchange: name, routingKey: "")
    }
}
