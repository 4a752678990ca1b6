import Foundation

/// The primitives of `StoreWire`'s binary form (see there): a writer, a reader that never reads past its
/// buffer, and the standard types' encodings.
package struct WireError: Error, CustomStringConvertible {
    package var description: String
    package init(_ text: String) { description = "unreadable store message: \(text)" }
}

package struct WireWriter {
    package var bytes: [UInt8] = []
    /// The format being written (see `StoreWire`).
    package let version: UInt8

    package init(version: UInt8 = 1) {
        self.version = version
        bytes.reserveCapacity(1024)
    }

    package mutating func unsigned(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    package mutating func int(_ value: Int) {
        let v = Int64(value)
        unsigned(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
    }

    package mutating func string(_ value: String) {
        var s = value
        s.withUTF8 { utf8 in
            unsigned(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    package mutating func data(_ value: Data) {
        unsigned(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    package mutating func double(_ value: Double) {
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }
}

package struct WireReader {
    private let base: UnsafeRawBufferPointer
    private var index = 0
    /// The format being read (see `StoreWire`).
    package var version: UInt8 = 1

    package init(_ base: UnsafeRawBufferPointer) { self.base = base }

    package var atEnd: Bool { index == base.count }
    package var remaining: Int { base.count - index }

    package mutating func byte() throws -> UInt8 {
        guard index < base.count else { throw WireError("truncated") }
        defer { index += 1 }
        return base[index]
    }

    package mutating func unsigned() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw WireError("varint too long") }
            value |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return value }
            shift += 7
        }
    }

    package mutating func int() throws -> Int {
        let u = try unsigned()
        return Int(Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1))))
    }

    package mutating func count() throws -> Int {
        let n = try unsigned()
        // Every element takes at least a byte: a count beyond what is left is corrupt, not an allocation.
        guard n <= UInt64(remaining) else { throw WireError("a count of \(n) with \(remaining) byte(s) left") }
        return Int(n)
    }

    private mutating func slice() throws -> UnsafeRawBufferPointer {
        let n = try count()
        defer { index += n }
        return UnsafeRawBufferPointer(rebasing: base[index..<index + n])
    }

    package mutating func string() throws -> String {
        let s = try slice()
        guard let text = String(validating: s.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw WireError("a string that is not UTF-8")
        }
        return text
    }

    package mutating func data() throws -> Data { Data(try slice()) }

    package mutating func double() throws -> Double {
        guard remaining >= 8 else { throw WireError("truncated") }
        var bits: UInt64 = 0
        for i in 0..<8 { bits |= UInt64(base[index + i]) << (8 * UInt64(i)) }
        index += 8
        return Double(bitPattern: bits)
    }
}

/// A value the store RPC carries.
package protocol WireCodable {
    /// The oldest format that holds this value (see `StoreWire`).
    static var wireVersion: UInt8 { get }
    func write(to w: inout WireWriter)
    init(from r: inout WireReader) throws
}

extension WireCodable {
    package static var wireVersion: UInt8 { 1 }
}

extension String: WireCodable {
    package func write(to w: inout WireWriter) { w.string(self) }
    package init(from r: inout WireReader) throws { self = try r.string() }
}

extension Int: WireCodable {
    package func write(to w: inout WireWriter) { w.int(self) }
    package init(from r: inout WireReader) throws { self = try r.int() }
}

extension Double: WireCodable {
    package func write(to w: inout WireWriter) { w.double(self) }
    package init(from r: inout WireReader) throws { self = try r.double() }
}

extension Date: WireCodable {
    package func write(to w: inout WireWriter) { w.double(timeIntervalSince1970) }
    package init(from r: inout WireReader) throws { self = Date(timeIntervalSince1970: try r.double()) }
}

extension Data: WireCodable {
    package func write(to w: inout WireWriter) { w.data(self) }
    package init(from r: inout WireReader) throws { self = try r.data() }
}

extension Optional: WireCodable where Wrapped: WireCodable {
    package func write(to w: inout WireWriter) {
        if let value = self {
            w.bytes.append(1)
            value.write(to: &w)
        } else {
            w.bytes.append(0)
        }
    }

    package init(from r: inout WireReader) throws {
        switch try r.byte() {
        case 0: self = nil
        case 1: self = try Wrapped(from: &r)
        case let b: throw WireError("optional marker \(b)")
        }
    }
}

extension Array: WireCodable where Element: WireCodable {
    package static var wireVersion: UInt8 { Element.wireVersion }

    package func write(to w: inout WireWriter) {
        w.unsigned(UInt64(count))
        for e in self { e.write(to: &w) }
    }

    package init(from r: inout WireReader) throws {
        let n = try r.count()
        self = []
        reserveCapacity(n)
        for _ in 0..<n { append(try Element(from: &r)) }
    }
}

extension Dictionary: WireCodable where Key == String, Value: WireCodable {
    package func write(to w: inout WireWriter) {
        w.unsigned(UInt64(count))
        for (k, v) in self {
            w.string(k)
            v.write(to: &w)
        }
    }

    package init(from r: inout WireReader) throws {
        let n = try r.count()
        self = [:]
        reserveCapacity(n)
        for _ in 0..<n {
            let k = try r.string()
            self[k] = try Value(from: &r)
        }
    }
}
