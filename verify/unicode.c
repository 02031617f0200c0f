/*
 * verify/unicode.c - code point classes, UTF-8 as llama.cpp reads it, and the
 * GPT-2 byte map. See verify/tokenizer_impl.h.
 */
#include "verify/tokenizer_impl.h"

unsigned qf_unicode_flags(uint32_t cp)
{
    size_t lo = 0, hi, mid;
    unsigned f;

    if (cp >= 0x110000)
        return QF_UCP_UNDEFINED;
    /* Last range whose start is <= cp (the table starts at 0). */
    hi = qf_unicode_n_ranges - 1;
    while (lo + 1 < hi) {
        mid = lo + (hi - lo) / 2;
        if ((qf_unicode_ranges[mid] >> 8) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    f = qf_unicode_ranges[lo] & 0xFF;

    lo = 0;
    hi = qf_unicode_n_whitespace;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (qf_unicode_whitespace[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < qf_unicode_n_whitespace && qf_unicode_whitespace[lo] == cp)
        f |= QF_UCP_WHITESPACE;
    return f;
}

size_t qf_unicode_len_utf8(unsigned char lead)
{
    static const unsigned char len[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return len[lead >> 4];
}

/* One code point at s[*off] (len bytes in all), as unicode_cpt_from_utf8;
 * -1 for an invalid sequence (the caller substitutes U+FFFD, skips a byte). */
static int64_t decode_one(const unsigned char *s, size_t len, size_t *off)
{
    size_t o = *off;
    unsigned char b0 = s[o];
    uint32_t cp;

    if (!(b0 & 0x80)) {
        *off = o + 1;
        return b0;
    }
    if (!(b0 & 0x40))
        return -1;
    if (!(b0 & 0x20)) {
        if (o + 1 >= len || (s[o + 1] & 0xC0) != 0x80)
            return -1;
        cp = ((uint32_t)(b0 & 0x1F) << 6) | (s[o + 1] & 0x3F);
        *off = o + 2;
        return cp;
    }
    if (!(b0 & 0x10)) {
        if (o + 2 >= len || (s[o + 1] & 0xC0) != 0x80 || (s[o + 2] & 0xC0) != 0x80)
            return -1;
        cp = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[o + 1] & 0x3F) << 6) |
             (s[o + 2] & 0x3F);
        *off = o + 3;
        return cp;
    }
    if (!(b0 & 0x08)) {
        if (o + 3 >= len || (s[o + 1] & 0xC0) != 0x80 || (s[o + 2] & 0xC0) != 0x80 ||
            (s[o + 3] & 0xC0) != 0x80)
            return -1;
        cp = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[o + 1] & 0x3F) << 12) |
             ((uint32_t)(s[o + 2] & 0x3F) << 6) | (s[o + 3] & 0x3F);
        *off = o + 4;
        return cp;
    }
    return -1;
}

size_t qf_unicode_decode(const char *s, size_t len, uint32_t *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t off = 0, n = 0;

    while (off < len) {
        int64_t cp = decode_one(u, len, &off);
        if (cp < 0) {
            off++;
            cp = 0xFFFD;
        }
        out[n++] = (uint32_t)cp;
    }
    return n;
}

size_t qf_unicode_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;

    if (cp <= 0x7F) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp <= 0x7FF) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp > 0x10FFFF)
        cp = 0xFFFD;
    if (cp <= 0xFFFF) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Bytes that stand for themselves in GPT-2's map: '!'..'~', U+00A1..U+00AC,
 * U+00AE..U+00FF. The other 68 take U+0100.. in byte order. */
static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t qf_unicode_byte_to_cpt(uint8_t b)
{
    unsigned i, n = 0;

    if (byte_is_printable(b))
        return b;
    for (i = 0; i < b; i++)
        n += !byte_is_printable(i);
    return 0x100 + n;
}

int qf_unicode_cpt_to_byte(uint32_t cp)
{
    unsigned i, n = 0;

    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    for (i = 0; i < 256; i++) {
        if (byte_is_printable(i))
            continue;
        if (0x100 + n == cp)
            return (int)i;
        n++;
    }
    return -1;
}
