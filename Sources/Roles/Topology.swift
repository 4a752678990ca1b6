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
    /// `classic` or `quorum` (settings.queue_type): the type of the queues that carry data.
    package var queueType = "classic"
    /// Quorum mode: the data queues' `x-delivery-limit` (settings.delivery_limit).
    package var deliveryLimit = 100

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
        queueType = config.settings.queueType
        deliveryLimit = config.settings.deliveryLimit
    }

    /// Every queue Switchboard declares, for the metrics of their depths.
    package var queueNames: [String] {
        [Contract.unroutedQueue, Contract.parkedQueue, Contract.storeQueue, Contract.storeMembersQueue]
            + endpoints.flatMap { [Contract.inboundQueue($0), Contract.outboundQueue($0)] }
            + outboundDelays.map { Contract.delayQueue(forExchange: Contract.outboundDelayExchange($0)) }
            + timerDelays.map { Contract.delayQueue(forExchange: Contract.timerDelayExchange($0)) }
            + (0..<partitions).map(Contract.workQueue)
    }

    /// A queue that carries data: a quorum queue (replicated, at-least-once) when the settings say so.
    /// `singleConsumer`: one consumer at a time, enforced by the broker on every queue type (inbound queues
    /// and work partitions, whose order rests on it). A classic queue's consumer asks for it with
    /// `exclusive`; a quorum queue ignores `exclusive` (a second exclusive consume succeeds), so it is
    /// declared with `x-single-active-consumer`: a second consumer gets nothing while the first is there.
    ///
    /// In quorum mode every queue that carries ESB or work messages also names its delivery limit and where
    /// a message past it goes (`sb.parked`, at-least-once), so nothing rests on a version's default (RabbitMQ
    /// 4 gives quorum queues a limit of 20 and then drops the message). `sb.parked` itself has none: the
    /// store role drains it at once, and nothing else consumes it.
    private func declareData(_ name: String, on c: Connection, singleConsumer: Bool = false, limited: Bool = true) throws(AMQPError) {
        try c.declareQueue(name, arguments: Self.dataArguments(
            queueType: queueType, singleConsumer: singleConsumer, deliveryLimit: limited ? deliveryLimit : nil))
    }

    package static func dataArguments(queueType: String, singleConsumer: Bool, deliveryLimit: Int?) -> [String: FieldValue] {
        guard queueType == "quorum" else { return [:] }
        var args: [String: FieldValue] = ["x-queue-type": .string("quorum")]
        if singleConsumer { args["x-single-active-consumer"] = .bool(true) }
        if let deliveryLimit {
            args["x-delivery-limit"] = .int(Int64(deliveryLimit))
            args["x-dead-letter-exchange"] = .string("")
            args["x-dead-letter-routing-key"] = .string(Contract.parkedQueue)
            // At-least-once dead-lettering (confirmed into sb.parked) needs reject-publish overflow.
            args["x-dead-letter-strategy"] = .string("at-least-once")
            args["x-overflow"] = .string("reject-publish")
        }
        return args
    }

    package func declare(on c: Connection) throws(AMQPError) {
        try c.declareExchange(Contract.unroutedExchange, type: "fanout")
        try declareData(Contract.unroutedQueue, on: c, singleConsumer: true)
        try c.bindQueue(Contract.unroutedQueue, exchange: Contract.unroutedExchange, routingKey: "")
        try c.declareExchange(Contract.inboundExchange, arguments: ["alternate-exchange": .string(Contract.unroutedExchange)])
        try c.declareExchange(Contract.outboundExchange)
        try c.declareExchange(Contract.workExchange)
        try declareData(Contract.parkedQueue, on: c, limited: false)
        try Self.declareStoreQueue(on: c, queueType: queueType)
        for e in endpoints {
            try declareData(Contract.inboundQueue(e), on: c, singleConsumer: true)
            try c.bindQueue(Contract.inboundQueue(e), exchange: Contract.inboundExchange, routingKey: e)
            try declareData(Contract.outboundQueue(e), on: c)
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
            try declareData(Contract.workQueue(p), on: c, singleConsumer: true)
            try c.bindQueue(Contract.workQueue(p), exchange: Contract.workExchange, routingKey: String(p))
        }
    }

    /// The store's request queues (`sb.store`, and `sb.store.members` for heartbeats). Requests are answered within a caller's timeout or not at all (each has an
    /// `expiration`), so nothing in it needs to outlive a broker node. On a cluster (quorum mode) it is a
    /// transient queue: when its node goes, the broker deletes it and the next process to declare it
    /// makes it again on a live node; a durable classic queue would stay "down" with its node.
    /// The store's request queues. In quorum mode quorum queues too (replicated: they outlive a node, with a
    /// new leader elected), never transient: RabbitMQ 4 deprecates transient non-exclusive queues and can
    /// refuse them. Requests carry an expiration (the caller's timeout), which quorum queues honour.
    package static func declareStoreQueue(on c: Connection, queueType: String) throws(AMQPError) {
        let args: [String: FieldValue] = queueType == "quorum" ? ["x-queue-type": .string("quorum")] : [:]
        try c.declareQueue(Contract.storeQueue, arguments: args)
        try c.declareQueue(Contract.storeMembersQueue, arguments: args)
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
