-- Wireshark / tshark dissector for DCIA tensor packets (docs/wire-format.md).
--
--   tshark -X lua_script:tools/wireshark/dcia.lua -r capture.pcap -V
--
-- The wire format is defined once, by the scapy layer dcia.wire.DCIA; this file follows
-- it name for name: the header fields (dcia.<field>, in wire order, with their widths),
-- the flags (dcia.flags.<FLAG>, one bit each) and the status codes. The test
-- tests/unit/tools/test_wireshark.py asks tshark what this file registered (-G fields,
-- -G values) and compares it with dcia.wire, and compares tshark's decoding of every
-- packet of its captures with scapy's.
--
-- Like scapy's binding (bind_layers(UDP, DCIA, dport=56346)) it takes UDP datagrams whose
-- destination port is 56346, tensors and answers alike. A malformed payload is decoded as
-- far as its bytes go and flagged with expert info, with the message dcia.wire.malformation()
-- gives for it.

local DCIA_UDP_PORT = 56346
local DCIA_VERSION = 1
local HEADER_BYTES = 16
local MAX_WIRE_ELEMS = 1024

local dcia = Proto("dcia", "DCIA (Distributed Collaborative Inference Acceleration)")

-- dcia.wire.Flag: bit, name
local FLAGS = {
    { 0x01, "RESULT" },
    { 0x02, "ERROR" },
    { 0x04, "MALFORMED" },
    { 0x08, "NO_OFFLOAD" },
    { 0x10, "ENCRYPTED" },
    { 0x20, "FUSE" },
    { 0x40, "FUSED" },
}

local FLAG = {}
for _, fl in ipairs(FLAGS) do FLAG[fl[2]] = fl[1] end

-- dcia.wire.Status
local STATUS = {
    [0] = "OK",
    [1] = "MALFORMED",
    [2] = "UNKNOWN_MODEL",
    [3] = "BAD_SHAPE",
    [4] = "INTERNAL",
    [5] = "UNAUTHORISED",
    [6] = "BAD_SEAL",
}

-- dcia.wire.HEADER_FIELDS: name, bits, display base, value strings
local HEADER = {
    { "ver", 8, base.DEC },
    { "flags", 8, base.HEX },
    { "model_id", 16, base.DEC },
    { "model_version", 16, base.DEC },
    { "next_layer", 8, base.DEC },
    { "net_layers", 8, base.DEC },
    { "request_id", 32, base.DEC },
    { "n_elems", 16, base.DEC },
    { "status", 8, base.DEC, STATUS },
    { "reserved", 8, base.DEC },
}

local UINT = { [8] = ProtoField.uint8, [16] = ProtoField.uint16, [32] = ProtoField.uint32 }

local f = {}
for _, h in ipairs(HEADER) do
    local name, bits, display, strings = h[1], h[2], h[3], h[4]
    f[name] = UINT[bits]("dcia." .. name, name, display, strings)
end
local flag_fields = {}
for _, fl in ipairs(FLAGS) do
    local field = ProtoField.bool("dcia.flags." .. fl[2], fl[2], 8, nil, fl[1])
    flag_fields[#flag_fields + 1] = field
end
f.elems = ProtoField.bytes("dcia.elems", "elems")
f.elem = ProtoField.int8("dcia.elem", "elem", base.DEC)

local all = {}
for _, h in ipairs(HEADER) do all[#all + 1] = f[h[1]] end
for _, field in ipairs(flag_fields) do all[#all + 1] = field end
all[#all + 1] = f.elems
all[#all + 1] = f.elem
dcia.fields = all

-- The malformation classes of dcia.wire.malformation(), in the order it checks them.
local ex = {
    short_header = ProtoExpert.new("dcia.malformed.short_header", "DCIA header cut short",
        expert.group.MALFORMED, expert.severity.ERROR),
    version = ProtoExpert.new("dcia.malformed.version", "unknown DCIA version",
        expert.group.MALFORMED, expert.severity.ERROR),
    too_many = ProtoExpert.new("dcia.malformed.too_many",
        "more elements than a DCIA packet may carry",
        expert.group.MALFORMED, expert.severity.ERROR),
    truncated = ProtoExpert.new("dcia.malformed.truncated", "tensor shorter than n_elems",
        expert.group.MALFORMED, expert.severity.ERROR),
    trailing = ProtoExpert.new("dcia.malformed.trailing", "bytes after the tensor",
        expert.group.MALFORMED, expert.severity.ERROR),
    flagged = ProtoExpert.new("dcia.flagged_malformed", "a switch flagged this packet MALFORMED",
        expert.group.PROTOCOL, expert.severity.WARN),
}
dcia.experts = { ex.short_header, ex.version, ex.too_many, ex.truncated, ex.trailing, ex.flagged }

-- What dcia.wire.malformation() says about a payload of `len` bytes: expert, message.
local function malformation(len, ver, n_elems)
    if len < HEADER_BYTES then
        return ex.short_header,
            string.format("%d bytes, shorter than the %d-byte header", len, HEADER_BYTES)
    end
    if ver ~= DCIA_VERSION then
        return ex.version, string.format("DCIA version %d, expected %d", ver, DCIA_VERSION)
    end
    if n_elems > MAX_WIRE_ELEMS then
        return ex.too_many,
            string.format("%d elements, more than the maximum %d", n_elems, MAX_WIRE_ELEMS)
    end
    local present = len - HEADER_BYTES
    if present < n_elems then
        return ex.truncated,
            string.format("truncated: header says %d elements, %d present", n_elems, present)
    end
    if present > n_elems then
        return ex.trailing,
            string.format("%d bytes after the %d-element tensor", present - n_elems, n_elems)
    end
    return nil
end

-- The flags as scapy writes them (str(DCIA.flags)): set names joined by '+'; an
-- undefined bit, which scapy writes as '?', shows as its value.
local function flag_names(value)
    local names, known = {}, 0
    for _, fl in ipairs(FLAGS) do
        known = bit32.bor(known, fl[1])
        if bit32.band(value, fl[1]) ~= 0 then names[#names + 1] = fl[2] end
    end
    local unknown = bit32.band(value, bit32.bnot(known))
    if unknown ~= 0 then names[#names + 1] = string.format("0x%02x", unknown) end
    return table.concat(names, "+")
end

function dcia.dissector(tvb, pinfo, tree)
    if pinfo.dst_port ~= DCIA_UDP_PORT then
        return 0 -- as in scapy, only the destination port makes a datagram DCIA
    end
    local captured = tvb:len()
    local len = tvb:reported_length_remaining()
    pinfo.cols.protocol = "DCIA"

    -- The header fields as far as they were captured; peek() reads missing bytes as 0.
    local value, offset = {}, 0
    for _, h in ipairs(HEADER) do
        local bytes = h[2] / 8
        value[h[1]] = (offset + bytes <= captured) and tvb(offset, bytes):uint() or 0
        offset = offset + bytes
    end
    local n_elems = value.n_elems

    local summary = string.format("model %d v%d layer %d req %d",
        value.model_id, value.model_version, value.next_layer, value.request_id)
    local root = tree:add(dcia, tvb(0, math.min(captured, HEADER_BYTES + n_elems)),
        "DCIA, " .. summary .. string.format(", %d elements", n_elems))

    offset = 0
    for _, h in ipairs(HEADER) do
        local name, bytes = h[1], h[2] / 8
        if offset + bytes > captured then break end
        local item = root:add(f[name], tvb(offset, bytes))
        if name == "flags" then
            if value.flags ~= 0 then item:append_text(" (" .. flag_names(value.flags) .. ")") end
            for _, field in ipairs(flag_fields) do item:add(field, tvb(offset, bytes)) end
        end
        offset = offset + bytes
    end

    -- The elements present, at most n_elems of them.
    local shown = math.max(0, math.min(n_elems, captured - HEADER_BYTES))
    if shown > 0 then
        local tensor = root:add(f.elems, tvb(HEADER_BYTES, shown))
        tensor:set_text(string.format("elems: %d × int8", shown))
        for i = 0, shown - 1 do
            local item = tensor:add(f.elem, tvb(HEADER_BYTES + i, 1))
            item:set_text(string.format("elem[%d]: %d", i, tvb(HEADER_BYTES + i, 1):int()))
        end
    end

    local problem, message = malformation(len, value.ver, n_elems)
    if problem then
        root:add_proto_expert_info(problem, message)
    end
    if bit32.band(value.flags, FLAG.MALFORMED) ~= 0 then
        root:add_proto_expert_info(ex.flagged)
    end
    pinfo.cols.info = string.format("DCIA %s [%s] n=%d", summary, flag_names(value.flags), n_elems)
    if problem then
        pinfo.cols.info:append(" [malformed: " .. message .. "]")
    end
    return captured
end

DissectorTable.get("udp.port"):add(DCIA_UDP_PORT, dcia)
