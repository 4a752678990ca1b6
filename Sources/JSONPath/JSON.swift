import Foundation

/// A JSON value (RFC 8259). Numbers compare and compute as IEEE doubles, as in I-JSON (RFC 7493), which
/// JSONPath assumes, and keep the text they were written with (see `JSONNumber`).
public enum JSON: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// Parses UTF-8 JSON text (RFC 8259). The error names line and column.
    public static func parse(_ data: some DataProtocol) throws(JSONParseError) -> JSON {
        var parser = JSONParser(data)
        return try parser.parseDocument()
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSON {
        try parse(Data(text.utf8))
    }

    /// Compact serialisation with sorted keys, so equal values always give equal bytes. Written directly
    /// rather than through JSONEncoder: this runs several times per message and Codable's generic path
    /// cost more than the rest of the rule evaluation together.
    public func serialized() -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(to: &out)
        return Data(out)
    }

    public var serializedString: String {
        var out: [UInt8] = []
        write(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `string` as a JSON string literal (quoted and escaped), for writers of JSON text that know
    /// their shape and need no tree of values.
    public static func appendQuoted(_ string: String, to out: inout [UInt8]) {
        write(string: string, to: &out)
    }

    /// The serialized text's first `maxBytes` bytes (cut back to a whole character), written without the
    /// rest: an excerpt of a large value costs its excerpt, not the value. `truncated`: there was more.
    public func serializedString(maxBytes: Int) -> (text: String, truncated: Bool) {
        var out: [UInt8] = []
        out.reserveCapacity(min(maxBytes, 4096) + 8)
        write(to: &out, limit: maxBytes)
        guard out.count > maxBytes else { return (String(decoding: out, as: UTF8.self), false) }
        var end = maxBytes
        while end > 0, out[end] & 0xC0 == 0x80 { end -= 1 }
        return (String(decoding: out[..<end], as: UTF8.self), true)
    }

    /// Writes the serialization, or, once `out` holds more than `limit` bytes, stops: what is written is
    /// then a prefix of the whole serialization at least `limit + 1` bytes long.
    private func write(to out: inout [UInt8], limit: Int = .max) {
        guard out.count <= limit else { return }
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: n.description.utf8)
        case .string(let s): Self.write(string: s, to: &out, limit: limit)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                guard out.count <= limit else { return }
                if i > 0 { out.append(UInt8(ascii: ",")) }
                item.write(to: &out, limit: limit)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, key) in members.keys.sorted().enumerated() {
                guard out.count <= limit else { return }
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.write(string: key, to: &out, limit: limit)
                out.append(UInt8(ascii: ":"))
                members[key]!.write(to: &out, limit: limit)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func write(string: String, to out: inout [UInt8], limit: Int = .max) {
        out.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { whole in
            // Escaping never shortens: the first `limit` bytes of the text are enough for `limit` of output.
            let bytes = limit == .max || whole.count <= limit ? whole : UnsafeBufferPointer(rebasing: whole[..<limit])
            // Runs of bytes that need no escaping are copied whole.
            var run = 0
            for i in bytes.indices {
                let byte = bytes[i]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if run < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i])) }
                run = i + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                default:
                    let hex: StaticString = "0123456789abcdef"
                    out.append(contentsOf: [UInt8(ascii: "u"), 48, 48])
                    out.append(hex.utf8Start[Int(byte >> 4)])
                    out.append(hex.utf8Start[Int(byte & 0xF)])
                }
            }
            if run < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...])) }
        }
        out.append(UInt8(ascii: "\""))
    }

    public subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The text a template or a reference uses for a scalar; nil for arrays and objects.
    public var scalarText: String? {
        switch self {
        case .null: return ""
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n.description
        case .string(let s): return s
        case .array, .object: return nil
        }
    }

    /// Whole numbers in the exact double range as integers (`3`, not `3.0`); others as Swift prints them.
    /// One rule for serialisation, templates and comparisons, so a value reads the same everywhere.
    static func format(number n: Double) -> String {
        if n.rounded() == n, abs(n) < 9.007_199_254_740_992e15 { return String(Int64(n)) }
        return String(n)
    }
}

/// A JSON number: its value as a double, for comparisons and arithmetic, and the text it was written
/// with where the double would not give it back (integers beyond 2^53, `1.50`, `1e3`), so a number is
/// relayed exactly as it came.
public struct JSONNumber: Hashable, Sendable, Swift.Comparable, CustomStringConvertible {
    public let value: Double
    /// As written; nil when `value` prints the same (most integers), which saves keeping a string.
    public let text: String?

    public init(_ value: Double) {
        self.value = value
        self.text = nil
    }

    /// From a JSON number literal (already checked by the parser); nil when it is out of a double's range.
    public init?(text: String) {
        guard let value = Double(text), value.isFinite else { return nil }
        self.value = value
        var digits = text.utf8.count
        if text.utf8.first == UInt8(ascii: "-") { digits -= 1 }
        // Up to 15 digits with no fraction or exponent: the double prints exactly this (except "-0").
        let plain = digits <= 15 && text != "-0" && text.utf8.allSatisfy { $0 == UInt8(ascii: "-") || ($0 >= 48 && $0 <= 57) }
        self.text = plain ? nil : text
    }

    public var description: String { text ?? JSON.format(number: value) }

    /// Equal values are equal numbers (1 == 1.0, as JSONPath wants), except beyond a double's exact
    /// integers, where two integers written differently are different numbers (ids, amounts).
    public static func == (a: JSONNumber, b: JSONNumber) -> Bool {
        guard a.value == b.value else { return false }
        if abs(a.value) >= 9.007_199_254_740_992e15, let x = a.text, let y = b.text, isInteger(x), isInteger(y) {
            return x == y
        }
        return true
    }

    private static func isInteger(_ s: String) -> Bool {
        s.utf8.allSatisfy { $0 == UInt8(ascii: "-") || ($0 >= 48 && $0 <= 57) }
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(value) }

    public static func < (a: JSONNumber, b: JSONNumber) -> Bool { a.value < b.value }
}

public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}

/// Codable, so JSON values can sit inside other Codable types (test fixtures, the store's RPC messages).
/// The hot path uses `JSON.parse`, which is faster and says where the input is wrong.
extension JSON: Codable {
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .number(let n):
            // A Decimal is written as its digits: an integer beyond 2^53 (an id, an amount) crosses intact.
            if n.text != nil, let d = Decimal(string: n.description), d.description == n.description {
                try container.encode(d)
            } else {
                try container.encode(n.value)
            }
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? container.decode(Decimal.self) {
            let text = d.description
            self = .number(JSONNumber(text: text) ?? JSONNumber(Double(truncating: d as NSNumber)))
        } else if let n = try? container.decode(Double.self) {
            self = .number(JSONNumber(n))
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSON].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: JSON].self))
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(Double(value))) }
    public init(floatLiteral value: Double) { self = .number(JSONNumber(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}
