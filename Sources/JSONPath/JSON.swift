import Foundation

// Made once: creating a coder per message costs more than the coding of a small message.
private let decoder = JSONDecoder()
private let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return e
}()

/// A JSON value (RFC 8259). Numbers are IEEE doubles, as in I-JSON (RFC 7493), which JSONPath assumes.
public enum JSON: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    /// Parses UTF-8 JSON text. The error names the position Foundation reports.
    public static func parse(_ data: some DataProtocol) throws -> JSON {
        do {
            return try decoder.decode(JSON.self, from: Data(data))
        } catch let error as DecodingError {
            // JSONDecoder does not say where; JSONSerialization does ("around line 1, column 9").
            var message = JSONParseError.describe(error)
            do {
                _ = try JSONSerialization.jsonObject(with: Data(data), options: [.fragmentsAllowed])
            } catch {
                if let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String {
                    message = "not valid JSON: \(detail)"
                }
            }
            throw JSONParseError(message: message)
        }
    }

    public static func parse(_ text: String) throws -> JSON {
        try parse(Data(text.utf8))
    }

    /// Compact serialisation with sorted keys, so equal values always give equal bytes.
    public func serialized() -> Data {
        // Encoding a JSON value cannot fail: every case maps onto an encodable primitive.
        return (try? encoder.encode(self)) ?? Data("null".utf8)
    }

    public var serializedString: String { String(decoding: serialized(), as: UTF8.self) }

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
        case .number(let n): return JSON.format(number: n)
        case .string(let s): return s
        case .array, .object: return nil
        }
    }

    static func format(number n: Double) -> String {
        if n.rounded() == n, abs(n) < 1e15 { return String(Int64(n)) }
        return String(n)
    }
}

public struct JSONParseError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return "not valid JSON: \(underlying ?? context.debugDescription)"
        default:
            return "not valid JSON: \(error)"
        }
    }
}

extension JSON: Codable {
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? container.decode(Double.self) {
            self = .number(n)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSON].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: JSON].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .number(let n):
            if n.rounded() == n, abs(n) < 9.007_199_254_740_992e15 {
                try container.encode(Int64(n))
            } else {
                try container.encode(n)
            }
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}
