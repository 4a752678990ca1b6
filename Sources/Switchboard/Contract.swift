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
    package static let workExchange = "sb.work"
    /// Requests to the store role (load and commit), answered through direct reply-to.
    package static let storeQueue = "sb.store"

    /// The pseudo-endpoint timers arrive from.
    package static let timerEndpoint = "switchboard"

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
        package static let rule = "x-sb-rule"
        package static let sourceEndpoint = "x-sb-source-endpoint"
        package static let endpoint = "x-sb-endpoint"
        package static let kind = "x-sb-kind"
        package static let reason = "x-sb-reason"
        package static let stage = "x-sb-stage"
        package static let parkedAt = "x-sb-parked-at"
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
    }

    /// Ticket ids longer than this are refused at intake: they are keys in the store and in every page.
    package static let maxTicketIdLength = 255

    package static let ackType = "ack"

    /// Outbound message ids embed the conversation and the route of the ticket whose message caused them:
    /// `sb-<conversation>-<route>-<inbound>-<n>`. An ack (whose correlation_id is one of them) and a timer
    /// thus go to the same partition as that ticket's own messages, without asking the store, and are
    /// processed in the order they were published relative to them.
    package static func outboundMessageId(
        conversation: String, route: UInt64, inbound: String, index: Int, timer: Bool = false
    ) -> String {
        "sb-\(conversation)-\(hex(route))-\(inbound)-\(timer ? "t" : "")\(index)"
    }

    package static func parse(outboundMessageId id: String) -> (conversation: String, route: UInt64)? {
        let parts = id.split(separator: "-")
        guard parts.count == 5, parts[0] == "sb", parts[1].count == 32, let route = UInt64(parts[2], radix: 16) else {
            return nil
        }
        return (String(parts[1]), route)
    }

    /// The route of a ticket: which partition its messages (and the acks and timers they cause) use.
    package static func route(endpoint: String, ticket: String) -> UInt64 {
        var h = Hash.FNV64()
        h.add(endpoint)
        h.add([0])
        h.add(ticket)
        return h.value
    }

    package static func partition(route: UInt64, partitions: Int) -> Int {
        Int(route % UInt64(partitions))
    }

    package static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 16 - s.count)) + s
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

    /// 16 hex digits naming an inbound message within its conversation's outbound ids: stable, so a
    /// message evaluated again after a crash produces the same outbound ids.
    package static func inboundHash(endpoint: String, messageId: String) -> String {
        var h = Hash.FNV128()
        h.add(endpoint)
        h.add([0])
        h.add(messageId)
        return String(h.hex.prefix(16))
    }

    package static func newConversationId() -> String {
        UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

}

/// FNV-1a: fast, stable across processes and versions (unlike Swift's seeded Hasher), not cryptographic.
package enum Hash {
    package struct FNV64 {
        package var value: UInt64 = 0xcbf2_9ce4_8422_2325
        package init() {}
        package mutating func add(_ s: String) { add(Array(s.utf8)) }
        package mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes {
                value ^= UInt64(b)
                value &*= 0x0000_0100_0000_01B3
            }
        }
        package var hex: String { String(value, radix: 16).leftPadded(16) }
    }

    package struct FNV128 {
        private var value: UInt128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d
        private static let prime: UInt128 = 0x0000_0000_0100_0000_0000_0000_0000_013B
        package init() {}
        package mutating func add(_ s: String) { add(Array(s.utf8)) }
        package mutating func add<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes {
                value ^= UInt128(b)
                value &*= Self.prime
            }
        }
        package var hex: String { String(value, radix: 16).leftPadded(32) }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
