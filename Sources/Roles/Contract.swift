import AMQP
import Foundation
import Rules

/// The names of the ESB-facing contract (docs/esb-contract.md) and our internal queues, in one place.
package enum Contract {
    package static let inboundExchange = "sb.in"
    package static let outboundExchange = "sb.out"
    /// Messages published to sb.in with a routing key no endpoint has land here, and are parked.
    package static let unroutedExchange = "sb.in.unrouted"
    package static let unroutedQueue = "sb.in.unrouted"
    package static let parkedQueue = "sb.parked"
    /// `sb.lock.<queue>`: the exclusive (connection-owned) queue a loop holds while it alone consumes
    /// `<queue>` (see `ConsumerLoop.lock`). Never holds a message.
    package static let lockPrefix = "sb.lock."
    package static let workExchange = "sb.work"
    /// Requests to the store role (load and commit), answered through direct reply-to.
    package static let storeQueue = "sb.store"
    /// Membership heartbeats and leaves, served by a loop of their own in the store process: a backlog of
    /// commits in `sb.store` never delays a heartbeat into a member's expiry.
    package static let storeMembersQueue = "sb.store.members"

    /// The pseudo-endpoint timers arrive from.
    package static let timerEndpoint = MessageIds.timerEndpoint

    /// Delayed outbound messages wait in `sb.delay.<ms>` (one TTL per queue) and dead-letter to sb.out.
    package static func outboundDelayExchange(_ ms: Int) -> String { "sb.delay.\(ms)" }
    /// Timers wait in `sb.delay.work.<ms>` and dead-letter to sb.work, into their conversation's partition.
    package static func timerDelayExchange(_ ms: Int) -> String { "sb.delay.work.\(ms)" }

    /// The quorum queue behind a delay exchange: `sb.delay.<ms>` -> `sb.delayq.<ms>`, `sb.delay.work.<ms>` ->
    /// `sb.delayq.work.<ms>`. (Earlier builds used classic queues named like the exchange; docs/operations.md says how to remove them.)
    package static func delayQueue(forExchange exchange: String) -> String {
        "sb.delayq." + exchange.dropFirst("sb.delay.".count)
    }
    package static func inboundQueue(_ endpoint: String) -> String { "sb.in.\(endpoint)" }
    package static func outboundQueue(_ endpoint: String) -> String { "sb.out.\(endpoint)" }
    package static func workQueue(_ partition: Int) -> String { "sb.work.\(partition)" }

    /// Headers we set. Outbound messages name their conversation and rule; parked ones say why.
    package enum Header {
        package static let conversation = "x-sb-conversation"
        /// On a copy of a waiting REST message the admin publishes to send it now (its value: when, ms since
        /// 1970): the delivery sends it at once and drops the waiting one when it comes back.
        package static let tryNow = "x-sb-try-now"
        /// Set by the delivery on a try-now copy that waits again: from then on it waits like any other.
        package static let triedNow = "x-sb-tried-now"
        package static let rule = "x-sb-rule"
        package static let sourceEndpoint = "x-sb-source-endpoint"
        package static let endpoint = "x-sb-endpoint"
        package static let kind = "x-sb-kind"
        package static let reason = "x-sb-reason"
        package static let stage = "x-sb-stage"
        package static let parkedAt = "x-sb-parked-at"
        /// A token of our own parking, unique per parked copy: two identical messages parked in the same
        /// millisecond are two rows, and a redelivered copy is recognised as the same one.
        package static let parkedId = "x-sb-parked-id"
        /// On what the ingress publishes: the id its answer named, which intake gives the message if it parks
        /// it (honoured from the ingress's broker user only: a parked id is unique, and a forged one would
        /// collide with another message's row).
        package static let ingressId = "x-sb-ingress-id"
        package static let originalExchange = "x-sb-original-exchange"
        package static let originalRoutingKey = "x-sb-original-routing-key"
        package static let messageIdDerived = "x-sb-message-id-derived"
        /// On a work message: intake got it redelivered from `sb.in.<endpoint>` (it may have been applied
        /// already by a process that died before acking it; the worker then re-publishes the stored outbox).
        package static let redelivered = "x-sb-redelivered"
        /// On what a fused intake routes to a partition, and on its barriers (`x-sb-kind: barrier`):
        /// `<process>:<sequence>`; that process's worker reports it once passed (see FusedIntakeHandler).
        package static let barrier = "x-sb-barrier"
        /// What the ESB published (exchange, routing key, every property and header), kept as data on our
        /// work and parked messages: none of it rides along as their properties (see `Original`).
        package static let original = "x-sb-original"
        /// On a replayed message put straight into `sb.in.<endpoint>`: take `x-sb-original` as what arrived.
        package static let replay = "x-sb-replay"
        /// On a work message: when intake received it (milliseconds since 1970), so the timeline can say
        /// how long the message was in Switchboard before it was decided.
        package static let receivedAt = "x-sb-received-at"
        /// On a timer bucket (`x-sb-kind: timers`): how many timers it carries (see `TimerBuckets`).
        package static let count = "x-sb-count"
    }

    /// Ticket ids longer than this are refused at intake: they are keys in the store and in every page.
    package static let maxTicketIdLength = 255

    package static let ackType = "ack"

    /// An outbound message (not a timer) as the worker publishes it: to `sb.out` with its target as the routing
    /// key, or through the delay exchange of its delay. The admin's try-now publishes the same again.
    package static func outbound(_ o: StoredOutbound, at now: Date) -> Outgoing {
        let props = Properties(
            contentType: "application/json", messageId: o.messageId, correlationId: o.inbound.messageId, type: o.type,
            appId: "switchboard", timestamp: UInt64(now.timeIntervalSince1970), persistent: true,
            headers: [
                Header.conversation: .string(o.conversationId), Header.rule: .string(o.rule), Header.sourceEndpoint: .string(o.inbound.endpoint),
            ])
        var message = Message(body: o.body, properties: props)
        if o.delayMs > 0 {
            message.properties.expiration = String(o.delayMs)
            return Outgoing(exchange: outboundDelayExchange(o.delayMs), routingKey: o.target, message: message)
        }
        return Outgoing(exchange: outboundExchange, routingKey: o.target, message: message)
    }

    /// Outbound message ids and routes (see `MessageIds`).
    package static func parse(outboundMessageId id: String) -> (conversation: String, route: UInt64)? {
        MessageIds.parse(outbound: id)
    }

    package static func route(endpoint: String, ticket: String) -> UInt64 {
        MessageIds.route(endpoint: endpoint, ticket: ticket)
    }

    package static func partition(route: UInt64, partitions: Int) -> Int {
        Int(route % UInt64(partitions))
    }

    /// A stable id for an inbound message whose ESB sent none. It covers what makes two messages
    /// different (endpoint, type, correlation id, body): a resend gets the same id and is recognised,
    /// while two acks with the same body that answer different messages do not.
    package static func derivedMessageId(endpoint: String, type: String?, correlationId: String?, body: Data) -> String {
        var h = Hash.FNV128()
        for part in [endpoint, type ?? "", correlationId ?? ""] {
            h.add(part)
            h.add([0])
        }
        h.add(body)
        return "derived-" + h.hex
    }

    /// What a message says (type, correlation id, body), to tell a resend (same digest) from another message
    /// that reuses its message_id. 64 bits: it only ever tells apart messages with one id.
    package static func digest(type: String?, correlationId: String?, body: Data) -> String {
        var h = Hash.FNV64()
        for part in [type ?? "", correlationId ?? ""] {
            h.add(part)
            h.add([0])
        }
        body.withUnsafeBytes { h.add($0) }
        return h.hex
    }

    package static func newConversationId() -> String {
        UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }
}

