# Builds the sample messages of this directory as annotated hex, from the
# published ISO 8583:1987 layout and independently of the Go codec, so the
# golden tests check the codec against something it did not write.
# Run: python3 gen_samples.py
import os
OUT = os.path.dirname(os.path.abspath(__file__))

# number: (name, lentype, max, content)
L = {
 2:("PAN","LL",19,"n"), 3:("processing code","F",6,"n"), 4:("amount, transaction","F",12,"n"),
 7:("transmission date and time","F",10,"n"), 11:("STAN","F",6,"n"), 12:("local time","F",6,"n"),
 13:("local date","F",4,"n"), 14:("expiration date","F",4,"n"), 18:("merchant type","F",4,"n"),
 22:("POS entry mode","F",3,"n"), 25:("POS condition code","F",2,"n"),
 32:("acquiring institution id","LL",11,"n"), 35:("track 2 data","LL",37,"ans"),
 37:("RRN","F",12,"an"), 38:("authorization id response","F",6,"an"), 39:("response code","F",2,"an"),
 41:("terminal id","F",8,"ans"), 42:("card acceptor id","F",15,"ans"), 43:("card acceptor name/location","F",40,"ans"),
 49:("currency code","F",3,"n"), 52:("PIN data","F",8,"b"), 54:("additional amounts","LLL",120,"an"),
 70:("network management code","F",3,"n"), 90:("original data elements","F",42,"n"),
 95:("replacement amounts","F",42,"an"), 128:("MAC","F",8,"b"),
}

def bcd(digits):
    if len(digits) % 2: digits = "0" + digits
    return bytes(int(digits[i])<<4 | int(digits[i+1]) for i in range(0, len(digits), 2))

def build(name, title, mti, fields, enc):
    lines = ["# " + title, "# spec: " + ("Spec87BCD" if enc=="bcd" else "Spec87ASCII") + ", binary bitmaps"]
    raw = bytearray()
    def seg(b, comment):
        raw.extend(b)
        lines.append(b.hex().upper().ljust(40) + " # " + comment)
    seg(bcd(mti) if enc=="bcd" else mti.encode(), "MTI %s" % mti)
    nums = sorted(fields)
    secondary = any(n > 64 for n in nums)
    bits = set(nums) | ({1} if secondary else set())
    def bitmap(lo):
        v = 0
        for n in range(lo, lo+64):
            if n in bits: v |= 1 << (63 - (n-lo))
        return v.to_bytes(8, "big")
    seg(bitmap(1), "primary bitmap: fields " + " ".join(str(n) for n in sorted(bits) if n <= 64))
    if secondary:
        seg(bitmap(65), "secondary bitmap: fields " + " ".join(str(n) for n in nums if n > 64))
    for n in nums:
        fname, lt, mx, ct = L[n]
        v = fields[n]
        assert len(v) <= mx and (lt != "F" or len(v) == mx), (n, v)
        if ct == "n": assert v.isdigit(), (n, v)
        pre = b""
        if lt != "F":
            w = 2 if lt == "LL" else 3
            pre = bcd(str(len(v)).zfill(4 if w == 3 else 2)) if enc == "bcd" else str(len(v)).zfill(w).encode()
        if ct == "n" and enc == "bcd":
            body = bcd(v)
        elif ct == "b":
            body = v.encode("latin1")
        else:
            body = v.encode()
        show = v.encode("latin1").hex().upper() if ct == "b" else v
        seg(pre + body, "field %d %s (%s%s%d): %s%s" % (n, fname, ct, ".." if lt=="LL" else "..." if lt=="LLL" else "", mx, repr(show),
            (" with length prefix " + pre.hex().upper()) if pre else ""))
    with open(os.path.join(OUT, name), "w") as f:
        f.write("\n".join(lines) + "\n")

# Field 43: name 23, city 13, region 2, country 2.
auth = {2:"4111111111111111", 3:"000000", 4:"000000001250", 7:"0615143025", 11:"000123", 12:"163025",
        13:"0615", 14:"2812", 18:"5999", 22:"012", 25:"00", 32:"123456", 37:"123456789012",
        41:"TERM0001", 42:"MERCHANT0000001", 43:"IOTPAY VENDING 1".ljust(23) + "BERLIN".ljust(15) + "DE", 49:"978"}
resp = {k: auth[k] for k in (2,3,4,7,11,12,13,32,37,41,42,49)}
resp.update({38:"A1B2C3", 39:"00"})
orig = "0100" + "000123" + "0615143025" + "00000123456" + "00000000000"
rev = {k: auth[k] for k in (2,3,4,14,32,37,41,42,49)}
rev.update({7:"0615143110", 11:"000124", 12:"163110", 13:"0615", 39:"68", 90:orig})
echo = {7:"0615143000", 11:"000042", 70:"301"}
echo_resp = dict(echo); echo_resp[39] = "00"
sale = {3:"000000", 4:"000000002000", 7:"0615150000", 11:"000200", 12:"170000", 13:"0615", 22:"021", 25:"00",
        32:"123456", 35:"4111111111111111=2812101123456789", 37:"000000000200", 41:"TERM0001", 42:"MERCHANT0000001",
        49:"840", 52:"\x01\x23\x45\x67\x89\xAB\xCD\xEF", 54:"0002840C000000000500"}
partial = {2:"4111111111111111", 3:"000000", 4:"000000002000", 7:"0615150100", 11:"000201", 32:"123456",
           37:"000000000200", 39:"00", 41:"TERM0001", 42:"MERCHANT0000001", 49:"840",
           90:"0200000200061515000000000123456" + "00000000000",
           95:"000000001500" + "000000001500" + "C00000000" + "C00000000",
           128:"\x11\x22\x33\x44\x55\x66\x77\x88"}

build("0100_auth.ascii.hex", "0100 authorization request", "0100", auth, "ascii")
build("0110_approved.ascii.hex", "0110 authorization response: approved", "0110", resp, "ascii")
build("0400_reversal.ascii.hex", "0400 reversal of the 0100 (reason 68, response too late), field 90 original data elements", "0400", rev, "ascii")
build("0800_echo.ascii.hex", "0800 network management: echo test (field 70 = 301)", "0800", echo, "ascii")
build("0200_track2.ascii.hex", "0200 financial request read from track 2 with a PIN block and additional amounts (cash back)", "0200", sale, "ascii")
build("0400_partial.ascii.hex", "0400 partial reversal: replacement amounts (95) and MAC (128)", "0400", partial, "ascii")
build("0100_auth.bcd.hex", "0100 authorization request", "0100", auth, "bcd")
build("0400_reversal.bcd.hex", "0400 reversal with field 90 original data elements", "0400", rev, "bcd")
build("0810_echo.bcd.hex", "0810 network management response: echo approved", "0810", echo_resp, "bcd")
build("0200_track2.bcd.hex", "0200 financial request from track 2, PIN block, additional amounts", "0200", sale, "bcd")
