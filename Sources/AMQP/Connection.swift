import CRabbitMQ
import Foundation
import Logging
import Synchronization

/// One AMQP connection over rabbitmq-c.
///
/// rabbitmq-c is blocking and not thread-safe, so a `Connection` belongs to the one thread that made it
/// and is never shared (it is deliberately not `Sendable`). Heartbeats are serviced only inside library
/// calls: callers wait for deliveries and confirms with bounded timeouts, never sleep while holding it.
///
/// Channels: 1 consumes (qos, consume, ack), 2 publishes in confirm mode, 3 carries declarations and
/// other RPCs. Frames are read by one pump that files each one where it belongs, so a delivery that
/// arrives while we wait for confirms is kept, not lost.
///
/// Over 400 lines on purpose: the class and its frame pump share bookkeeping (pending deliveries, the
/// unconfirmed sequence numbers, the channel's tag base) that stays private to this file; split into
/// extensions elsewhere it would have to be opened to the whole module. The conversions between
/// rabbitmq-c's structures and ours, and the method ids, are in Conversions.swift.
package final class Connection {
    package let options: ConnectionOptions
    /// Increases with every connection made in this process; a delivery's tag is valid only on its own.
    package let generation: UInt64
    private let state: amqp_connection_state_t
    private let logger: Logger
    private var open = true

    private static let consumeChannel: amqp_channel_t = 1
    private static let publishChannel: amqp_channel_t = 2
    private static let rpcChannel: amqp_channel_t = 3

    private var pending: [Delivery] = []
    private var confirmsEnabled = false
    private var nextPublishSeq: UInt64 = 1
    /// Our sequence number of the publishing channel's delivery tag 0: the channel numbers from 1 again
    /// after `renewPublishChannel`, our sequence numbers go on.
    private var tagBase: UInt64 = 0
    private var consumingDirectReplies = false
    /// Sequence numbers published and not yet acked or nacked, in order.
    private var unconfirmed: [UInt64] = []
    private var unconfirmedHead = 0
    private var outcome = ConfirmOutcome()
    package private(set) var blocked = false
    /// Told when the broker blocks publishing on this connection (its reason, e.g. "low on memory") and
    /// when it unblocks (nil); called on the connection's thread, inside the call that read the frame.
    package var onBlocked: ((String?) -> Void)?

    private nonisolated(unsafe) static var generations: UInt64 = 0
    /// Which node of a cluster the next connection tries first (starts at random per process).
    private static let nextNode = Atomic<UInt64>(UInt64.random(in: 0..<1024))
    private static let generationLock = NSLock()

    package init(_ options: ConnectionOptions, logger: Logger) throws(AMQPError) {
        self.logger = logger
        Self.generationLock.lock()
        Self.generations += 1
        generation = Self.generations
        Self.generationLock.unlock()

        // Each node in turn, from the next one on every connection: a lost node's clients move to the
        // others, and one process's connections spread over the cluster.
        let count = options.nodes.count
        let first = count > 1 ? Int(Self.nextNode.add(1, ordering: .relaxed).oldValue % UInt64(count)) : 0
        var failures: [AMQPError] = []
        var opened: (amqp_connection_state_t, ConnectionOptions)?
        for i in 0..<max(1, count) {
            let node = count > 1 ? options.at(options.nodes[(first + i) % count]) : options
            guard let state = amqp_new_connection() else { throw AMQPError(.connect, "out of memory") }
            do {
                try Self.connectSocket(state, node)
                try Self.login(state, node)
                opened = (state, node)
                break
            } catch {
                amqp_destroy_connection(state)
                failures.append(error)
            }
        }
        guard let (state, node) = opened else {
            open = false
            // One node: its error as it was. Several: each node's, and the code of the last.
            if failures.count == 1 { throw failures[0] }
            throw AMQPError(failures.last?.code ?? .connect, "no node of the cluster took the connection: " + failures.map(\.message).joined(separator: "; "))
        }
        self.state = state
        self.options = node
        do {
            for channel in [Self.consumeChannel, Self.publishChannel, Self.rpcChannel] {
                amqp_channel_open(state, channel)
                try checkReply("channel.open", on: channel)
            }
        } catch {
            // checkReply frees the state itself after a closed channel, connection or timeout.
            if open {
                open = false
                amqp_destroy_connection(state)
            }
            throw error
        }
    }

    deinit {
        if open { close() }
    }

    private static func connectSocket(_ state: amqp_connection_state_t, _ options: ConnectionOptions) throws(AMQPError) {
        let socket: OpaquePointer?
        if options.tls {
            socket = amqp_ssl_socket_new(state)
            guard let socket else { throw AMQPError(.tls, "could not create a TLS socket") }
            // TLS 1.2 or newer only: rabbitmq-c 0.11 otherwise accepts TLS 1.0.
            guard amqp_ssl_socket_set_ssl_versions(socket, AMQP_TLSv1_2, AMQP_TLSvLATEST) == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(.tls, "could not restrict TLS to 1.2 and newer")
            }
            amqp_ssl_socket_set_verify_peer(socket, 1)
            amqp_ssl_socket_set_verify_hostname(socket, 1)
            let ca = options.caFile ?? "/etc/ssl/certs/ca-certificates.crt"
            guard amqp_ssl_socket_set_cacert(socket, ca) == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(.tls, "cannot read the CA file \(ca)")
            }
            if let cert = options.clientCertFile, let key = options.clientKeyFile {
                guard amqp_ssl_socket_set_key(socket, cert, key) == AMQP_STATUS_OK.rawValue else {
                    throw AMQPError(.tls, "cannot read the client certificate \(cert) or key \(key)")
                }
            }
        } else {
            socket = amqp_tcp_socket_new(state)
            guard socket != nil else { throw AMQPError(.connect, "could not create a socket") }
        }
        var timeout = Self.timeval(options.connectTimeout)
        let status = amqp_socket_open_noblock(socket, options.host, Int32(options.port), &timeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            let reason = String(cString: amqp_error_string2(status))
            let code: AMQPError.Code = options.tls && Self.isTLSStatus(status) ? .tls : .connect
            throw AMQPError(code, "cannot connect to \(options.redacted): \(reason)")
        }
        var rpcTimeout = Self.timeval(options.rpcTimeout)
        amqp_set_rpc_timeout(state, &rpcTimeout)
        // rabbitmq-c sends with no deadline and checks no heartbeat while it sends: a broker that stopped
        // reading this socket (flow control that never ends, a peer gone without a reset) would hold the
        // sending thread forever. The kernel aborts a connection whose data stays unacknowledged, or whose
        // peer's window stays shut, this long; the send fails and the caller reconnects.
        var userTimeout = UInt32(max(30, 2 * options.heartbeatSeconds) * 1000)
        _ = setsockopt(
            amqp_get_sockfd(state), Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &userTimeout, socklen_t(MemoryLayout<UInt32>.size))
    }

    private static func isTLSStatus(_ status: Int32) -> Bool {
        // AMQP_STATUS_SSL_* codes are in the -0x0200 range.
        status <= -0x0200 && status > -0x0300
    }

    private static func login(_ state: amqp_connection_state_t, _ options: ConnectionOptions) throws(AMQPError) {
        let arena = Arena()
        // rabbitmq-c announces only `authentication_failure_close` and `exchange_exchange_bindings` and
        // merges what we add. Without `consumer_cancel_notify` the broker drops a consumer in silence when
        // its queue goes away (a transient queue whose cluster node stopped): the consumer would wait
        // forever on a queue that no longer has it. With it, a basic.cancel arrives and the loop reconnects.
        // `connection.blocked` makes a resource alarm a logged warning instead of a silent stall.
        let capabilities = FieldValue.table(["consumer_cancel_notify": .bool(true), "connection.blocked": .bool(true)])
        var entries = [amqp_table_entry_t(key: arena.bytes("connection_name"), value: arena.field(.string(options.connectionName))),
                       amqp_table_entry_t(key: arena.bytes("capabilities"), value: arena.field(capabilities))]
        let reply = entries.withUnsafeMutableBufferPointer { buffer -> amqp_rpc_reply_t in
            var table = amqp_table_t(num_entries: Int32(buffer.count), entries: buffer.baseAddress)
            return sb_amqp_login_with_properties(
                state, options.vhost, 0, 131_072, Int32(options.heartbeatSeconds), &table, options.user, options.password)
        }
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            // The password is never part of the message.
            let detail = error(for: reply, "login").message
            throw AMQPError(.login, "login as '\(options.user)' to vhost '\(options.vhost)' at \(options.redacted) refused: \(detail)")
        }
    }

    /// Closes channels and the connection politely when the socket still works; always frees it.
    /// The goodbye waits for the broker's close-ok at most 2 s (not the RPC timeout): a connection is often
    /// closed because the broker stopped answering on it, and a caller must not hang on the politeness.
    package func close() {
        guard open else { return }
        open = false
        var goodbye = Self.timeval(min(options.rpcTimeout, 2))
        amqp_set_rpc_timeout(state, &goodbye)
        _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
        amqp_destroy_connection(state)
    }

    package var isOpen: Bool { open }

    /// The heartbeat interval agreed with the broker, in seconds (0: none); the lower of ours and the broker's.
    package var heartbeatSeconds: Int { open ? Int(amqp_get_heartbeat(state)) : 0 }

    /// Every call that uses the connection's state checks it first: after a failure the state is freed, and
    /// a caller that kept the connection (a pool) gets an error instead of a use after free.
    private func live() throws(AMQPError) {
        guard open else { throw AMQPError(.connectionClosed, "the connection to \(options.redacted) is closed") }
    }

    // MARK: - Topology and RPCs (channel 3)

    package func declareExchange(
        _ name: String, type: String = "direct", durable: Bool = true, arguments: [String: FieldValue] = [:]
    ) throws(AMQPError) {
        try live()
        let arena = Arena()
        amqp_exchange_declare(
            state, Self.rpcChannel, arena.bytes(name), arena.bytes(type), 0, durable ? 1 : 0, 0, 0,
            arena.table(arguments))
        try checkReply("exchange.declare \(name)")
    }

    /// Declares a queue; returns how many messages it holds.
    @discardableResult
    package func declareQueue(
        _ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        arguments: [String: FieldValue] = [:]
    ) throws(AMQPError) -> (messages: Int, consumers: Int) {
        try live()
        let arena = Arena()
        let ok = amqp_queue_declare(
            state, Self.rpcChannel, arena.bytes(name), 0, durable ? 1 : 0, exclusive ? 1 : 0, autoDelete ? 1 : 0,
            arena.table(arguments))
        try checkReply("queue.declare \(name)")
        guard let ok else { return (0, 0) }
        return (Int(ok.pointee.message_count), Int(ok.pointee.consumer_count))
    }

    /// Passive declare: the queue's depth, or an error if it does not exist (which closes channel 3,
    /// so this reopens it).
    package func queueDepth(_ name: String) throws(AMQPError) -> (messages: Int, consumers: Int) {
        try live()
        let arena = Arena()
        let ok = amqp_queue_declare(state, Self.rpcChannel, arena.bytes(name), 1, 0, 0, 0, amqp_empty_table)
        try checkReply("queue.declare passive \(name)")
        guard let ok else { return (0, 0) }
        return (Int(ok.pointee.message_count), Int(ok.pointee.consumer_count))
    }

    package func bindQueue(_ queue: String, exchange: String, routingKey: String) throws(AMQPError) {
        try live()
        let arena = Arena()
        amqp_queue_bind(
            state, Self.rpcChannel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey), amqp_empty_table)
        try checkReply("queue.bind \(queue) to \(exchange) with \(routingKey)")
    }

    @discardableResult
    package func purgeQueue(_ queue: String) throws(AMQPError) -> Int {
        try live()
        let arena = Arena()
        let ok = amqp_queue_purge(state, Self.rpcChannel, arena.bytes(queue))
        try checkReply("queue.purge \(queue)")
        return Int(ok?.pointee.message_count ?? 0)
    }

    package func deleteQueue(_ queue: String) throws(AMQPError) {
        try live()
        let arena = Arena()
        amqp_queue_delete(state, Self.rpcChannel, arena.bytes(queue), 0, 0)
        try checkReply("queue.delete \(queue)")
    }

    package func deleteExchange(_ name: String) throws(AMQPError) {
        try live()
        let arena = Arena()
        amqp_exchange_delete(state, Self.rpcChannel, arena.bytes(name), 0)
        try checkReply("exchange.delete \(name)")
    }

    // MARK: - Consuming (channel 1)

    package func qos(prefetch: Int) throws(AMQPError) {
        try live()
        amqp_basic_qos(state, Self.consumeChannel, 0, UInt16(clamping: prefetch), 0)
        try checkReply("basic.qos", on: Self.consumeChannel)
    }

    @discardableResult
    package func consume(_ queue: String, exclusive: Bool = false, consumerTag: String = "") throws(AMQPError) -> String {
        try live()
        let arena = Arena()
        let ok = amqp_basic_consume(
            state, Self.consumeChannel, arena.bytes(queue), arena.bytes(consumerTag), 0, 0, exclusive ? 1 : 0,
            amqp_empty_table)
        try checkReply("basic.consume \(queue)", on: Self.consumeChannel)
        return ok.map { Self.string($0.pointee.consumer_tag) } ?? consumerTag
    }

    /// Starts consuming RabbitMQ's direct reply-to pseudo-queue on the publishing channel (where the
    /// requests must go out for replies to find their way back). Replies arrive through `nextDelivery`
    /// and need no ack. Publish requests with `replyTo: Connection.directReplyTo`.
    package func consumeDirectReplies() throws(AMQPError) {
        try live()
        let arena = Arena()
        amqp_basic_consume(
            state, Self.publishChannel, arena.bytes(Self.directReplyTo), arena.bytes(""), 0, 1, 0, amqp_empty_table)
        try checkReply("basic.consume \(Self.directReplyTo)", on: Self.publishChannel)
        consumingDirectReplies = true
    }

    /// Closes the publishing channel and opens it again (confirms as before), once everything published on
    /// it is settled. A quorum queue that refused a channel's publishes (over its length limit, overflow
    /// reject-publish) can go on refusing that channel after it has room or its limit is gone (measured
    /// on 3.10.8: over a minute, until the channel was replaced); a fresh channel is asked afresh.
    package func renewPublishChannel() throws(AMQPError) {
        try live()
        guard !consumingDirectReplies else { return }
        guard unconfirmedHead == unconfirmed.count else {
            throw AMQPError(.timeout, "the publishing channel still has \(unconfirmed.count - unconfirmedHead) unconfirmed message(s)")
        }
        // amqp_channel_close answers itself (amqp_get_rpc_reply does not see it).
        let closed = amqp_channel_close(state, Self.publishChannel, Int32(AMQP_REPLY_SUCCESS))
        guard closed.reply_type == AMQP_RESPONSE_NORMAL else {
            let error = Self.error(for: closed, "channel.close")
            fail()
            throw error
        }
        amqp_channel_open(state, Self.publishChannel)
        try checkReply("channel.open", on: Self.publishChannel)
        tagBase = nextPublishSeq - 1
        if confirmsEnabled {
            amqp_confirm_select(state, Self.publishChannel)
            try checkReply("confirm.select", on: Self.publishChannel)
        }
    }

    package static let directReplyTo = "amq.rabbitmq.reply-to"

    package func cancel(consumerTag: String) throws(AMQPError) {
        try live()
        let arena = Arena()
        amqp_basic_cancel(state, Self.consumeChannel, arena.bytes(consumerTag))
        try checkReply("basic.cancel \(consumerTag)", on: Self.consumeChannel)
    }

    /// The next delivery, waiting at most `timeout` seconds (0: only what has already arrived).
    package func nextDelivery(timeout: TimeInterval) throws(AMQPError) -> Delivery? {
        if pending.isEmpty {
            let deadline = Date().addingTimeInterval(timeout)
            repeat {
                guard try pump(until: deadline) else { break }
            } while pending.isEmpty
        }
        return pending.isEmpty ? nil : pending.removeFirst()
    }

    /// Keeps the connection alive until `deadline` without handing anything out: heartbeats go both ways,
    /// confirms are settled, deliveries wait in order for `nextDelivery`. For a loop that holds a batch
    /// (its store is away) on a connection it must not lose: losing it would give the batch back.
    package func idle(until deadline: Date) throws(AMQPError) {
        while Date() < deadline { _ = try pump(until: deadline) }
    }

    package func ack(_ delivery: Delivery, multiple: Bool = false) throws(AMQPError) {
        try live()
        try checkGeneration(delivery)
        try status(amqp_basic_ack(state, Self.consumeChannel, delivery.deliveryTag, multiple ? 1 : 0), "basic.ack")
    }

    package func nack(_ delivery: Delivery, multiple: Bool = false, requeue: Bool = true) throws(AMQPError) {
        try live()
        try checkGeneration(delivery)
        try status(
            amqp_basic_nack(state, Self.consumeChannel, delivery.deliveryTag, multiple ? 1 : 0, requeue ? 1 : 0), "basic.nack")
    }

    package func reject(_ delivery: Delivery, requeue: Bool) throws(AMQPError) {
        try live()
        try checkGeneration(delivery)
        try status(amqp_basic_reject(state, Self.consumeChannel, delivery.deliveryTag, requeue ? 1 : 0), "basic.reject")
    }

    private func checkGeneration(_ delivery: Delivery) throws(AMQPError) {
        // A tag from a dead connection would ack some other message on this one, or close the channel.
        guard delivery.generation == generation, open else {
            throw AMQPError(.staleDelivery, "delivery \(delivery.deliveryTag) came on an earlier connection; not acked")
        }
    }

    // MARK: - Publishing (channel 2, publisher confirms)

    package func enableConfirms() throws(AMQPError) {
        try live()
        guard !confirmsEnabled else { return }
        amqp_confirm_select(state, Self.publishChannel)
        try checkReply("confirm.select", on: Self.publishChannel)
        confirmsEnabled = true
    }

    /// Publishes one message; returns its publish sequence number (confirm mode).
    @discardableResult
    package func publish(
        exchange: String, routingKey: String, message: Message, mandatory: Bool = true
    ) throws(AMQPError) -> UInt64 {
        try live()
        let arena = Arena()
        var props = arena.properties(message.properties)
        let body = arena.bytes(message.body)
        let rc = amqp_basic_publish(
            state, Self.publishChannel, arena.bytes(exchange), arena.bytes(routingKey), mandatory ? 1 : 0, 0, &props, body)
        try status(rc, "basic.publish to \(exchange.isEmpty ? "(default)" : exchange)/\(routingKey)")
        let seq = nextPublishSeq
        nextPublishSeq += 1
        if confirmsEnabled { unconfirmed.append(seq) }
        return seq
    }

    /// Runs `body` (a batch of publishes) with the socket corked: the kernel sends the batch in full TCP
    /// segments instead of one push per message, which saves a system call's worth of TCP work here and a
    /// wake-up of the broker per message. Uncorking sends the rest at once.
    package func corked<T>(_ body: () throws(AMQPError) -> T) throws(AMQPError) -> T {
        let fd = socket
        Self.cork(fd, true)
        defer { Self.cork(fd, false) }
        return try body()
    }

    /// The connection's socket (-1 when closed).
    package var socket: Int32 { open ? amqp_get_sockfd(state) : -1 }

    private static func cork(_ fd: Int32, _ on: Bool) {
        guard fd >= 0 else { return }
        var value: Int32 = on ? 1 : 0
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_CORK, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The sequence number of the last message published on this connection (0: none yet).
    package var lastPublished: UInt64 { nextPublishSeq - 1 }

    /// Waits until the broker confirmed everything published so far. Returns what was nacked or returned
    /// since the last call. Throws `.timeout` when the broker does not answer in time.
    package func waitForConfirms(timeout: TimeInterval, giveUp: () -> Bool = { false }) throws(AMQPError) -> ConfirmOutcome {
        try waitForConfirms(through: lastPublished, timeout: timeout, giveUp: giveUp)
    }

    /// Waits until the broker confirmed every message published up to sequence number `seq` (later ones
    /// may still be open). Returns what was nacked or returned since the last call, whichever message it was.
    ///
    /// While the broker blocks the connection (a resource alarm: it said connection.blocked), the time does
    /// not count: the confirms come when the alarm clears, and giving the batch back meanwhile would only
    /// redeliver it again and again (toward a quorum queue's delivery limit). `giveUp` is asked about once
    /// a second while blocked (a stopping process): true throws `.blocked`.
    package func waitForConfirms(
        through seq: UInt64, timeout: TimeInterval, giveUp: () -> Bool = { false }
    ) throws(AMQPError) -> ConfirmOutcome {
        var deadline = Date().addingTimeInterval(timeout)
        while unconfirmedHead < unconfirmed.count, unconfirmed[unconfirmedHead] <= seq {
            if blocked {
                if giveUp() { throw AMQPError(.blocked, "the broker blocks publishing (resource alarm); given up waiting for confirms") }
                deadline = Date().addingTimeInterval(timeout)
            }
            guard try pump(until: blocked ? min(deadline, Date().addingTimeInterval(1)) : deadline) else {
                if blocked { continue }
                let open = unconfirmed[unconfirmedHead...].prefix { $0 <= seq }.count
                throw AMQPError(.timeout, "the broker did not confirm \(open) message(s) within \(timeout) s")
            }
        }
        if unconfirmedHead == unconfirmed.count {
            unconfirmed.removeAll(keepingCapacity: true)
            unconfirmedHead = 0
        } else if unconfirmedHead >= 4096 {
            // Messages keep being published before the earlier ones are confirmed: drop the settled prefix.
            unconfirmed.removeFirst(unconfirmedHead)
            unconfirmedHead = 0
        }
        let result = outcome
        outcome = ConfirmOutcome()
        return result
    }

    // MARK: - The frame pump

    /// Reads and files one frame. Returns false when the deadline passed with no frame.
    private func pump(until deadline: Date) throws(AMQPError) -> Bool {
        guard open else { throw AMQPError(.connectionClosed, "the connection is closed") }
        var frame = amqp_frame_t()
        let remaining = max(0, deadline.timeIntervalSinceNow)
        var tv = Self.timeval(remaining)
        let rc = amqp_simple_wait_frame_noblock(state, &frame, &tv)
        if rc == AMQP_STATUS_TIMEOUT.rawValue { return false }
        guard rc == AMQP_STATUS_OK.rawValue else {
            open = false
            amqp_destroy_connection(state)
            throw AMQPError(.connectionClosed, "connection to \(options.redacted) lost: \(String(cString: amqp_error_string2(rc)))")
        }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else {
            // Content frames are read by amqp_read_message; stray ones are ignored.
            return true
        }
        let channel = frame.channel
        let method = frame.payload.method
        switch method.id {
        case Method.basicDeliver:
            let d = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let consumerTag = Self.string(d.consumer_tag)
            let exchange = Self.string(d.exchange)
            let routingKey = Self.string(d.routing_key)
            let message = try readContent(channel: channel)
            pending.append(
                Delivery(
                    deliveryTag: d.delivery_tag, redelivered: d.redelivered != 0, exchange: exchange,
                    routingKey: routingKey, consumerTag: consumerTag, message: message, generation: generation))
        case Method.basicAck:  // a publisher confirm
            let a = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            settle(upTo: tagBase + a.delivery_tag, multiple: a.multiple != 0, nacked: false)
        case Method.basicNack:
            let n = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            settle(upTo: tagBase + n.delivery_tag, multiple: n.multiple != 0, nacked: true)
        case Method.basicReturn:
            let r = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let replyText = Self.string(r.reply_text)
            let exchange = Self.string(r.exchange)
            let routingKey = Self.string(r.routing_key)
            let message = try readContent(channel: channel)
            outcome.returned.append(
                ReturnedMessage(
                    replyCode: Int(r.reply_code), replyText: replyText, exchange: exchange, routingKey: routingKey,
                    message: message))
        case Method.channelClose:
            let c = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let text = Self.string(c.reply_text)
            fail()
            throw AMQPError(.channelClosed, "the broker closed channel \(channel): \(text)", replyCode: Int(c.reply_code))
        case Method.connectionClose:
            let c = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let text = Self.string(c.reply_text)
            var closeOk = amqp_connection_close_ok_t(dummy: 0)
            amqp_send_method(state, 0, Method.connectionCloseOk, &closeOk)
            fail()
            throw AMQPError(.connectionClosed, "the broker closed the connection: \(text)", replyCode: Int(c.reply_code))
        case Method.basicCancel:  // from the broker (queue deleted, node down)
            let c = method.decoded.assumingMemoryBound(to: amqp_basic_cancel_t.self).pointee
            let tag = Self.string(c.consumer_tag)
            fail()
            throw AMQPError(.consumerCancelled, "the broker cancelled consumer \(tag)")
        case Method.connectionBlocked:
            let reason = Self.string(method.decoded.assumingMemoryBound(to: amqp_connection_blocked_t.self).pointee.reason)
            blocked = true
            logger.warning(
                "broker blocked publishing (resource alarm)", metadata: ["amqp.server": "\(options.host)", "amqp.reason": "\(reason)"])
            onBlocked?(reason)
        case Method.connectionUnblocked:
            blocked = false
            logger.info("broker unblocked publishing", metadata: ["amqp.server": "\(options.host)"])
            onBlocked?(nil)
        default:
            logger.debug("ignored AMQP method", metadata: ["amqp.method": "\(method.id)", "amqp.channel": "\(channel)"])
        }
        if amqp_frames_enqueued(state) == 0, amqp_data_in_buffer(state) == 0 {
            amqp_maybe_release_buffers(state)
        }
        return true
    }

    private func fail() {
        open = false
        amqp_destroy_connection(state)
    }

    private func settle(upTo tag: UInt64, multiple: Bool, nacked: Bool) {
        if multiple {
            while unconfirmedHead < unconfirmed.count, unconfirmed[unconfirmedHead] <= tag {
                if nacked { outcome.nacked.append(unconfirmed[unconfirmedHead]) }
                unconfirmedHead += 1
            }
        } else if let i = unconfirmed[unconfirmedHead...].firstIndex(of: tag) {
            if nacked { outcome.nacked.append(tag) }
            unconfirmed.remove(at: i)
        }
    }

    private func readContent(channel: amqp_channel_t) throws(AMQPError) -> Message {
        var msg = amqp_message_t()
        let reply = amqp_read_message(state, channel, &msg, 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            let text = Self.error(for: reply, "read message").message
            fail()
            throw AMQPError(.connectionClosed, text)
        }
        defer { amqp_destroy_message(&msg) }
        return Message(body: Self.data(msg.body), properties: Self.properties(msg.properties))
    }

    // MARK: - Errors

    /// `channel`: the one the RPC went out on, where a channel.close from the broker is acknowledged (a
    /// close-ok on any other channel is a protocol error the broker logs as "unimplemented method").
    private func checkReply(_ what: String, on channel: amqp_channel_t = rpcChannel) throws(AMQPError) {
        let reply = amqp_get_rpc_reply(state)
        if reply.reply_type == AMQP_RESPONSE_NORMAL { return }
        let error = Self.error(for: reply, what)
        // A closed channel or connection is not recoverable on this connection: callers reconnect.
        if error.code == .channelClosed || error.code == .connectionClosed || error.code == .timeout {
            if error.code == .channelClosed {
                // Acknowledge the close so the socket stays usable for the goodbye.
                var closeOk = amqp_channel_close_ok_t(dummy: 0)
                amqp_send_method(state, channel, Method.channelCloseOk, &closeOk)
            }
            close()
        }
        throw error
    }

    private func status(_ rc: Int32, _ what: String) throws(AMQPError) {
        guard rc != AMQP_STATUS_OK.rawValue else { return }
        fail()
        throw AMQPError(.connectionClosed, "\(what): \(String(cString: amqp_error_string2(rc)))")
    }

    /// Turns a non-normal reply into an AMQPError naming the operation.
    private static func error(for reply: amqp_rpc_reply_t, _ what: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let code: AMQPError.Code = reply.library_error == AMQP_STATUS_TIMEOUT.rawValue ? .timeout : .connectionClosed
            return AMQPError(code, "\(what): \(String(cString: amqp_error_string2(reply.library_error)))")
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == Method.channelClose {
                let c = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return AMQPError(.channelClosed, "\(what): \(string(c.reply_text))", replyCode: Int(c.reply_code))
            }
            if reply.reply.id == Method.connectionClose {
                let c = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return AMQPError(.connectionClosed, "\(what): \(string(c.reply_text))", replyCode: Int(c.reply_code))
            }
            return AMQPError(.protocolError, "\(what): unexpected server method \(reply.reply.id)")
        default:
            return AMQPError(.protocolError, "\(what): no reply")
        }
    }
}
