import AMQP
import Logging
import Rules

/// Every exchange, queue and binding Switchboard needs, derived from the configuration. Declared by
/// each role on every (re)connect; declarations are idempotent, so any number of processes may do it.
package struct Topology: Sendable {
    package var endpoints: [String]
    package var partitions: Int

    package init(config: SwitchboardConfig) {
        endpoints = config.endpointNames
        partitions = config.settings.partitions
    }

    package func declare(on c: Connection) throws(AMQPError) {
        try c.declareExchange(Contract.unroutedExchange, type: "fanout")
        try c.declareQueue(Contract.unroutedQueue)
        try c.bindQueue(Contract.unroutedQueue, exchange: Contract.unroutedExchange, routingKey: "")
        try c.declareExchange(Contract.inboundExchange, arguments: ["alternate-exchange": .string(Contract.unroutedExchange)])
        try c.declareExchange(Contract.outboundExchange)
        try c.declareExchange(Contract.workExchange)
        try c.declareQueue(Contract.parkedQueue)
        for e in endpoints {
            try c.declareQueue(Contract.inboundQueue(e))
            try c.bindQueue(Contract.inboundQueue(e), exchange: Contract.inboundExchange, routingKey: e)
            try c.declareQueue(Contract.outboundQueue(e))
            try c.bindQueue(Contract.outboundQueue(e), exchange: Contract.outboundExchange, routingKey: e)
        }
        for p in 0..<partitions {
            try c.declareQueue(Contract.workQueue(p))
            try c.bindQueue(Contract.workQueue(p), exchange: Contract.workExchange, routingKey: String(p))
        }
    }
}
