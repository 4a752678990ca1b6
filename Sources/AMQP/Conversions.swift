import CRabbitMQ
import Foundation

// Between rabbitmq-c's C structures and ours: method ids, property flags, bytes, tables, properties.

/// AMQP 0-9-1 method ids, as amqp_framing.h defines them (its `AMQP_..._METHOD` macros are casts, which
/// Swift does not import): the class id in the high 16 bits, the method id in the low 16.
enum Method {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionCloseOk: amqp_method_number_t = 0x000A_0033
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let channelCloseOk: amqp_method_number_t = 0x0014_0029
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

extension Connection {
    static func timeval(_ seconds: TimeInterval) -> timeval {
        let s = max(0, seconds)
        return Glibc.timeval(tv_sec: Int(s), tv_usec: Int((s - s.rounded(.down)) * 1_000_000))
    }

    static func string(_ b: amqp_bytes_t) -> String {
        guard b.len > 0, let p = b.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: b.len), as: UTF8.self)
    }

    static func data(_ b: amqp_bytes_t) -> Data {
        guard b.len > 0, let p = b.bytes else { return Data() }
        return Data(bytes: p, count: b.len)
    }

    static func properties(_ p: amqp_basic_properties_t) -> Properties {
        let f = p._flags
        func has(_ flag: Int32) -> Bool { f & amqp_flags_t(flag) != 0 }
        var props = Properties(persistent: has(AMQP_BASIC_DELIVERY_MODE_FLAG) && p.delivery_mode == 2)
        props.deliveryModeSet = has(AMQP_BASIC_DELIVERY_MODE_FLAG)
        if has(AMQP_BASIC_CONTENT_TYPE_FLAG) { props.contentType = string(p.content_type) }
        if has(AMQP_BASIC_CONTENT_ENCODING_FLAG) { props.contentEncoding = string(p.content_encoding) }
        if has(AMQP_BASIC_PRIORITY_FLAG) { props.priority = p.priority }
        if has(AMQP_BASIC_CLUSTER_ID_FLAG) { props.clusterId = string(p.cluster_id) }
        if has(AMQP_BASIC_CORRELATION_ID_FLAG) { props.correlationId = string(p.correlation_id) }
        if has(AMQP_BASIC_REPLY_TO_FLAG) { props.replyTo = string(p.reply_to) }
        if has(AMQP_BASIC_EXPIRATION_FLAG) { props.expiration = string(p.expiration) }
        if has(AMQP_BASIC_MESSAGE_ID_FLAG) { props.messageId = string(p.message_id) }
        if has(AMQP_BASIC_TIMESTAMP_FLAG) { props.timestamp = p.timestamp }
        if has(AMQP_BASIC_TYPE_FLAG) { props.type = string(p.type) }
        if has(AMQP_BASIC_USER_ID_FLAG) { props.userId = string(p.user_id) }
        if has(AMQP_BASIC_APP_ID_FLAG) { props.appId = string(p.app_id) }
        if has(AMQP_BASIC_HEADERS_FLAG) { props.headers = table(p.headers) }
        return props
    }

    static func table(_ t: amqp_table_t) -> [String: FieldValue] {
        var out: [String: FieldValue] = [:]
        guard t.num_entries > 0, let entries = t.entries else { return out }
        for i in 0..<Int(t.num_entries) {
            let e = entries[i]
            if let v = field(e.value) { out[string(e.key)] = v }
        }
        return out
    }

    static func field(_ v: amqp_field_value_t) -> FieldValue? {
        switch UInt32(v.kind) {
        case AMQP_FIELD_KIND_UTF8.rawValue: return .string(string(v.value.bytes))
        case AMQP_FIELD_KIND_BYTES.rawValue: return .bytes(data(v.value.bytes))
        case AMQP_FIELD_KIND_BOOLEAN.rawValue: return .bool(v.value.boolean != 0)
        case AMQP_FIELD_KIND_I8.rawValue: return .int(Int64(v.value.i8))
        case AMQP_FIELD_KIND_U8.rawValue: return .int(Int64(v.value.u8))
        case AMQP_FIELD_KIND_I16.rawValue: return .int(Int64(v.value.i16))
        case AMQP_FIELD_KIND_U16.rawValue: return .int(Int64(v.value.u16))
        case AMQP_FIELD_KIND_I32.rawValue: return .int(Int64(v.value.i32))
        case AMQP_FIELD_KIND_U32.rawValue: return .int(Int64(v.value.u32))
        case AMQP_FIELD_KIND_I64.rawValue: return .int(v.value.i64)
        case AMQP_FIELD_KIND_U64.rawValue: return .int(Int64(bitPattern: v.value.u64))
        case AMQP_FIELD_KIND_TIMESTAMP.rawValue: return .timestamp(v.value.u64)
        case AMQP_FIELD_KIND_F32.rawValue: return .float(v.value.f32)
        case AMQP_FIELD_KIND_F64.rawValue: return .double(v.value.f64)
        case AMQP_FIELD_KIND_DECIMAL.rawValue: return .decimal(scale: v.value.decimal.decimals, value: v.value.decimal.value)
        case AMQP_FIELD_KIND_TABLE.rawValue: return .table(table(v.value.table))
        case AMQP_FIELD_KIND_ARRAY.rawValue:
            let a = v.value.array
            guard a.num_entries > 0, let entries = a.entries else { return .array([]) }
            return .array((0..<Int(a.num_entries)).compactMap { field(entries[$0]) })
        case AMQP_FIELD_KIND_VOID.rawValue: return .void
        default: return nil
        }
    }
}

/// C memory for one call: every string, body and table handed to rabbitmq-c is copied here and freed
/// together when the call is done.
final class Arena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for p in allocations { free(p) }
    }

    private func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        let p = malloc(max(count, 1))!
        allocations.append(p)
        return p
    }

    func bytes(_ s: String) -> amqp_bytes_t {
        var s = s
        return s.withUTF8 { buf in copy(UnsafeRawBufferPointer(buf)) }
    }

    func bytes(_ d: Data) -> amqp_bytes_t {
        d.withUnsafeBytes { copy($0) }
    }

    private func copy(_ buf: UnsafeRawBufferPointer) -> amqp_bytes_t {
        let p = allocate(buf.count)
        if buf.count > 0 { p.copyMemory(from: buf.baseAddress!, byteCount: buf.count) }
        return amqp_bytes_t(len: buf.count, bytes: p)
    }

    func field(_ v: FieldValue) -> amqp_field_value_t {
        var f = amqp_field_value_t()
        func kind(_ k: amqp_field_value_kind_t) { f.kind = UInt8(k.rawValue) }
        switch v {
        case .string(let s):
            kind(AMQP_FIELD_KIND_UTF8)
            f.value.bytes = bytes(s)
        case .bytes(let d):
            kind(AMQP_FIELD_KIND_BYTES)
            f.value.bytes = bytes(d)
        case .int(let i):
            kind(AMQP_FIELD_KIND_I64)
            f.value.i64 = i
        case .bool(let b):
            kind(AMQP_FIELD_KIND_BOOLEAN)
            f.value.boolean = b ? 1 : 0
        case .float(let x):
            kind(AMQP_FIELD_KIND_F32)
            f.value.f32 = x
        case .double(let x):
            kind(AMQP_FIELD_KIND_F64)
            f.value.f64 = x
        case .decimal(let scale, let value):
            kind(AMQP_FIELD_KIND_DECIMAL)
            f.value.decimal = amqp_decimal_t(decimals: scale, value: value)
        case .timestamp(let t):
            kind(AMQP_FIELD_KIND_TIMESTAMP)
            f.value.u64 = t
        case .table(let t):
            kind(AMQP_FIELD_KIND_TABLE)
            f.value.table = table(t)
        case .array(let items):
            kind(AMQP_FIELD_KIND_ARRAY)
            let entries = allocate(max(1, items.count) * MemoryLayout<amqp_field_value_t>.stride)
                .bindMemory(to: amqp_field_value_t.self, capacity: max(1, items.count))
            for (i, item) in items.enumerated() { entries[i] = field(item) }
            f.value.array = amqp_array_t(num_entries: Int32(items.count), entries: entries)
        case .void:
            kind(AMQP_FIELD_KIND_VOID)
        }
        return f
    }

    func table(_ values: [String: FieldValue]) -> amqp_table_t {
        guard !values.isEmpty else { return amqp_empty_table }
        let entries = allocate(values.count * MemoryLayout<amqp_table_entry_t>.stride)
            .bindMemory(to: amqp_table_entry_t.self, capacity: values.count)
        for (i, (k, v)) in values.sorted(by: { $0.key < $1.key }).enumerated() {
            entries[i] = amqp_table_entry_t(key: bytes(k), value: field(v))
        }
        return amqp_table_t(num_entries: Int32(values.count), entries: entries)
    }

    func properties(_ p: Properties) -> amqp_basic_properties_t {
        var props = amqp_basic_properties_t()
        var flags: Int32 = p.deliveryModeSet ? AMQP_BASIC_DELIVERY_MODE_FLAG : 0
        props.delivery_mode = p.persistent ? 2 : 1
        if let v = p.contentType { props.content_type = bytes(v); flags |= AMQP_BASIC_CONTENT_TYPE_FLAG }
        if let v = p.contentEncoding { props.content_encoding = bytes(v); flags |= AMQP_BASIC_CONTENT_ENCODING_FLAG }
        if let v = p.priority { props.priority = v; flags |= AMQP_BASIC_PRIORITY_FLAG }
        if let v = p.clusterId { props.cluster_id = bytes(v); flags |= AMQP_BASIC_CLUSTER_ID_FLAG }
        if let v = p.correlationId { props.correlation_id = bytes(v); flags |= AMQP_BASIC_CORRELATION_ID_FLAG }
        if let v = p.replyTo { props.reply_to = bytes(v); flags |= AMQP_BASIC_REPLY_TO_FLAG }
        if let v = p.expiration { props.expiration = bytes(v); flags |= AMQP_BASIC_EXPIRATION_FLAG }
        if let v = p.messageId { props.message_id = bytes(v); flags |= AMQP_BASIC_MESSAGE_ID_FLAG }
        if let v = p.timestamp { props.timestamp = v; flags |= AMQP_BASIC_TIMESTAMP_FLAG }
        if let v = p.type { props.type = bytes(v); flags |= AMQP_BASIC_TYPE_FLAG }
        if let v = p.userId { props.user_id = bytes(v); flags |= AMQP_BASIC_USER_ID_FLAG }
        if let v = p.appId { props.app_id = bytes(v); flags |= AMQP_BASIC_APP_ID_FLAG }
        if !p.headers.isEmpty { props.headers = table(p.headers); flags |= AMQP_BASIC_HEADERS_FLAG }
        props._flags = amqp_flags_t(flags)
        return props
    }
}
