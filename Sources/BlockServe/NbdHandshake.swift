/// What a client negotiated before transmission.
package struct NbdNegotiated: Sendable, Equatable {
    /// NBD_OPT_STRUCTURED_REPLY was acknowledged: reads and block status use structured replies.
    package var structuredReplies = false
    /// The context id given to `base:allocation` by NBD_OPT_SET_META_CONTEXT, or nil.
    package var baseAllocationID: UInt32? = nil
    /// The client asked for no zero padding after NBD_OPT_EXPORT_NAME.
    package var noZeroes = false

    /// Nothing negotiated yet.
    package init() {}
}

/// How a handshake ended.
package enum NbdHandshakeOutcome: Sendable, Equatable {
    /// NBD_OPT_GO or NBD_OPT_EXPORT_NAME succeeded: transmission starts.
    case transmission(NbdNegotiated)
    /// The client sent NBD_OPT_ABORT.
    case aborted
}

/// The fixed-newstyle negotiation of one connection (the server side of the protocol
/// document's "Option haggling"). Runs on the connection's thread with blocking reads
/// bounded by the socket's handshake timeout.
package struct NbdHandshake {
    /// Option data up to this size is read and parsed.
    package static let maxOptionLength = 64 << 10
    /// Option data up to this size is read and discarded with NBD_REP_ERR_TOO_BIG; a longer
    /// option disconnects the client.
    package static let maxDiscardLength = 16 << 20
    /// The context id this server gives `base:allocation`.
    package static let baseAllocationID: UInt32 = 1

    let socket: NbdSocket
    let export: NbdExport

    /// Prepares a handshake on an accepted socket for `export`.
    package init(socket: NbdSocket, export: NbdExport) {
        self.socket = socket
        self.export = export
    }

    /// Greets the client and answers options until it goes to transmission or aborts.
    /// Throws (with a log sentence) on malformed input, after which the caller disconnects.
    package func run() throws(NbdConnectionError) -> NbdHandshakeOutcome {
        try socket.writeAll(NbdEncoder.greeting())
        var flagsReader = NbdByteReader(try socket.readExact(4))
        guard let cf = flagsReader.u32() else { throw NbdConnectionError("no client flags") }
        if cf & ~(Nbd.clientFixedNewstyle | Nbd.clientNoZeroes) != 0 {
            throw NbdConnectionError("unknown client flags 0x\(String(cf, radix: 16)) (not an NBD client?)")
        }
        var state = NbdNegotiated()
        state.noZeroes = cf & Nbd.clientNoZeroes != 0
        while true {
            guard let h = NbdParser.optionHeader(try socket.readExact(NbdParser.optionHeaderSize)) else {
                throw NbdConnectionError("short option header")
            }
            if h.magic != Nbd.optionMagic {
                throw NbdConnectionError("bad option magic 0x\(String(h.magic, radix: 16)) (not an NBD client?)")
            }
            if Int(h.length) > Self.maxOptionLength {
                if Int(h.length) > Self.maxDiscardLength { throw NbdConnectionError("option \(h.option) with \(h.length) bytes of data") }
                var left = Int(h.length)
                while left > 0 { left -= try socket.readExact(min(left, 1 << 20)).count }
                try reply(h.option, .errTooBig)
                continue
            }
            let data = h.length == 0 ? [] : try socket.readExact(Int(h.length))
            if let outcome = try answer(h.option, data, &state) { return outcome }
        }
    }

    private func reply(_ option: UInt32, _ type: Nbd.Reply, _ data: [UInt8] = []) throws(NbdConnectionError) {
        try socket.writeAll(NbdEncoder.optionReply(option: option, type: type.rawValue, data: data))
    }

    private func knows(_ name: String) -> Bool { name == export.name || name.isEmpty }

    /// Answers one option; returns an outcome when negotiation is over.
    private func answer(_ opt: UInt32, _ data: [UInt8], _ state: inout NbdNegotiated) throws(NbdConnectionError) -> NbdHandshakeOutcome? {
        guard let option = Nbd.Option(rawValue: opt) else {
            try reply(opt, .errUnsupported)
            return nil
        }
        switch option {
        case .exportName:
            let name = String(decoding: data, as: UTF8.self)
            guard knows(name) else { throw NbdConnectionError("NBD_OPT_EXPORT_NAME for unknown export \"\(name.prefix(64))\"") }
            try socket.writeAll(NbdEncoder.exportNameReply(size: export.size, flags: export.transmissionFlags(structuredReplies: state.structuredReplies).rawValue, noZeroes: state.noZeroes))
            return .transmission(state)
        case .abort:
            try? reply(opt, .ack)
            return .aborted
        case .list:
            guard data.isEmpty else { try reply(opt, .errInvalid); return nil }
            try reply(opt, .server, NbdEncoder.serverEntry(export.name))
            try reply(opt, .ack)
        case .startTLS:
            try reply(opt, .errUnsupported)
        case .info, .go:
            guard let req = NbdParser.infoRequest(data) else { try reply(opt, .errInvalid); return nil }
            guard knows(req.name) else { try reply(opt, .errUnknown); return nil }
            try reply(opt, .info, NbdEncoder.infoExport(size: export.size, flags: export.transmissionFlags(structuredReplies: state.structuredReplies).rawValue))
            if req.requests.contains(Nbd.InfoType.name.rawValue) {
                try reply(opt, .info, NbdEncoder.infoString(.name, export.name))
            }
            if req.requests.contains(Nbd.InfoType.description.rawValue) {
                try reply(opt, .info, NbdEncoder.infoString(.description, export.exportDescription))
            }
            try reply(opt, .info, NbdEncoder.infoBlockSize(minimum: export.minimumBlockSize,
                                                          preferred: export.preferredBlockSize,
                                                          maximum: export.maximumPayload))
            try reply(opt, .ack)
            if option == .go { return .transmission(state) }
        case .structuredReply:
            guard data.isEmpty else { try reply(opt, .errInvalid); return nil }
            state.structuredReplies = true
            try reply(opt, .ack)
        case .listMetaContext, .setMetaContext:
            guard let req = NbdParser.metaContextRequest(data) else { try reply(opt, .errInvalid); return nil }
            if option == .setMetaContext && !state.structuredReplies { try reply(opt, .errInvalid); return nil }
            guard knows(req.name) else { try reply(opt, .errUnknown); return nil }
            let selected = (option == .listMetaContext && req.queries.isEmpty) || req.queries.contains(where: NbdParser.selectsBaseAllocation)
            if option == .setMetaContext { state.baseAllocationID = selected ? Self.baseAllocationID : nil }
            if selected {
                let id = option == .setMetaContext ? Self.baseAllocationID : 0
                try reply(opt, .metaContext, NbdEncoder.metaContext(id: id, name: Nbd.baseAllocation))
            }
            try reply(opt, .ack)
        }
        return nil
    }
}
