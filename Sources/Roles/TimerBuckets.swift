import AMQP
import Foundation
import JSONPath
import Rules

/// Timers due together travel together (issue 25, "Timers as a path of their own"). The timers a batch
/// schedules with the same delay for the same partition come due within the same few milliseconds (the
/// batch publishes them at once, and their delay queue has one TTL), so they are published as one broker
/// message, a **bucket** (`x-sb-kind: timers`), instead of one each: the delay queue enqueues, expires and
/// dead-letters one message, and `sb.work.<n>` delivers one, for every timer in it. What the broker did per
/// timer (a quorum enqueue, an at-least-once dead-letter, a work-queue hop) it does once per bucket.
///
/// The worker that receives a bucket opens it into one delivery per timer, exactly the message a lone
/// timer is (`x-sb-kind: timer`, its own stable id and body), all sharing the bucket's delivery tag: each
/// is decided, committed and de-duplicated on its own, and the bucket is acked with its batch once
/// everything its timers caused is confirmed. A redelivered bucket is a redelivery of each of its timers
/// (those applied already re-publish their stored outbox). A lone timer is still published as before, so
/// a quiet system sends the same messages as the release before this one.
package enum TimerBuckets {
    /// The most timers in one bucket: bounds the message (and a redelivery's work) whatever the batch size.
    package static let maxTimers = 256
    /// The most bytes of timer bodies in one bucket: far below RabbitMQ's `max_message_size` (16 MiB from
    /// 4.0) even when rules give timers large payloads. A timer larger than this travels alone.
    package static let maxBytes = 1 << 20

    /// Packs the timer messages among `outgoing` that share a delay exchange and partition into buckets;
    /// every other message keeps its place. A bucket takes the place of its first timer.
    package static func pack(_ outgoing: [Outgoing]) -> [Outgoing] {
        var groups: [String: [Int]] = [:]
        var order: [String] = []
        for (i, o) in outgoing.enumerated() where o.message.properties.headers[Contract.Header.kind] == .string("timer") {
            let key = o.exchange + "\u{0}" + o.routingKey
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(i)
        }
        guard groups.values.contains(where: { $0.count > 1 }) else { return outgoing }
        var replaced: [Int: Outgoing] = [:]
        var dropped = Set<Int>()
        for key in order {
            let members = groups[key]!
            guard members.count > 1 else { continue }
            for chunk in chunks(members, sizes: members.map { outgoing[$0].message.body.count }) where chunk.count > 1 {
                replaced[chunk[0]] = bucket(chunk.map { outgoing[$0] })
                dropped.formUnion(chunk.dropFirst())
            }
        }
        var out: [Outgoing] = []
        out.reserveCapacity(outgoing.count - dropped.count)
        for i in outgoing.indices where !dropped.contains(i) {
            out.append(replaced[i] ?? outgoing[i])
        }
        return out
    }

    /// `members` cut into runs of at most `maxTimers` whose bodies add up to at most `maxBytes` (a body
    /// larger than that is a run of its own).
    static func chunks(_ members: [Int], sizes: [Int]) -> [[Int]] {
        var out: [[Int]] = [], run: [Int] = [], bytes = 0
        for (m, size) in zip(members, sizes) {
            if !run.isEmpty, run.count == maxTimers || bytes + size > maxBytes {
                out.append(run)
                run = []
                bytes = 0
            }
            run.append(m)
            bytes += size
        }
        if !run.isEmpty { out.append(run) }
        return out
    }

    /// One bucket of lone timer messages (same exchange and routing key):
    /// `{"timers":[{"id":…,"conversation":…,"rule":…,"body":{…}}, …]}`. The bucket's message id names its
    /// first timer and the count, for the logs and a parked bucket.
    static func bucket(_ timers: [Outgoing]) -> Outgoing {
        var body: [UInt8] = []
        body.reserveCapacity(timers.reduce(16) { $0 + $1.message.body.count + 160 })
        body.append(contentsOf: Array(#"{"timers":["#.utf8))
        for (n, t) in timers.enumerated() {
            if n > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: Array(#"{"id":"#.utf8))
            JSON.appendQuoted(t.message.properties.messageId ?? "", to: &body)
            body.append(contentsOf: Array(#","conversation":"#.utf8))
            JSON.appendQuoted(t.message.properties.headers[Contract.Header.conversation]?.description ?? "", to: &body)
            body.append(contentsOf: Array(#","rule":"#.utf8))
            JSON.appendQuoted(t.message.properties.headers[Contract.Header.rule]?.description ?? "", to: &body)
            body.append(contentsOf: Array(#","body":"#.utf8))
            body.append(contentsOf: t.message.body)
            body.append(UInt8(ascii: "}"))
        }
        body.append(contentsOf: Array("]}".utf8))
        let first = timers[0].message.properties
        let props = Properties(
            contentType: "application/json", messageId: "timers:\(timers.count):\(first.messageId ?? "")", type: "timers",
            expiration: first.expiration, appId: "switchboard", persistent: true,
            headers: [
                Contract.Header.kind: .string("timers"), Contract.Header.endpoint: .string(Contract.timerEndpoint),
                Contract.Header.count: .int(Int64(timers.count)),
            ])
        return Outgoing(exchange: timers[0].exchange, routingKey: timers[0].routingKey, message: Message(body: Data(body), properties: props))
    }

    /// How many timers a published message carries: a bucket's count, 1 for a lone timer, 0 for anything else.
    package static func timers(in message: Message) -> Int {
        switch message.properties.headers[Contract.Header.kind] {
        case .string("timers")?:
            guard case .int(let n)? = message.properties.headers[Contract.Header.count] else { return 0 }
            return Int(n)
        case .string("timer")?: return 1
        default: return 0
        }
    }

    package static func isBucket(_ d: Delivery) -> Bool {
        d.message.properties.headers[Contract.Header.kind] == .string("timers")
    }

    /// A bucket that cannot be opened (not one of ours, or damaged): parked whole with this reason.
    package struct Unreadable: Error, CustomStringConvertible {
        package var description: String
    }

    /// The lone timer deliveries in a bucket, with their parsed bodies, in the bucket's order: each as the
    /// worker would have received it alone (the bucket's delivery tag, redelivered flag and routing).
    package static func open(_ d: Delivery) throws(Unreadable) -> [(delivery: Delivery, body: JSON)] {
        let parsed: JSON
        do {
            parsed = try JSON.parse(d.message.body)
        } catch {
            throw Unreadable(description: "a timer bucket whose body is not JSON: \(error)")
        }
        guard case .object(let o) = parsed, case .array(let timers)? = o["timers"], !timers.isEmpty else {
            throw Unreadable(description: "a timer bucket without a list of timers (\"timers\": [...])")
        }
        var out: [(delivery: Delivery, body: JSON)] = []
        out.reserveCapacity(timers.count)
        for (n, t) in timers.enumerated() {
            guard case .object(let fields) = t, let id = fields["id"]?.stringValue, !id.isEmpty,
                let conversation = fields["conversation"]?.stringValue, let body = fields["body"], case .object = body
            else {
                throw Unreadable(description: "timer \(n) of a bucket lacks its id, conversation or body object")
            }
            let props = Properties(
                contentType: "application/json", messageId: id, type: EventType.timer, appId: "switchboard", persistent: true,
                headers: [
                    Contract.Header.kind: .string("timer"), Contract.Header.endpoint: .string(Contract.timerEndpoint),
                    Contract.Header.conversation: .string(conversation), Contract.Header.rule: .string(fields["rule"]?.stringValue ?? ""),
                ])
            let lone = Delivery(
                deliveryTag: d.deliveryTag, redelivered: d.redelivered, exchange: d.exchange, routingKey: d.routingKey,
                consumerTag: d.consumerTag, message: Message(body: body.serialized(), properties: props), generation: d.generation)
            out.append((lone, body))
        }
        return out
    }
}
