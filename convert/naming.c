/*
 * convert/naming.c - model naming heuristics, following gguf-py's
 * Metadata.get_model_id_components and id_to_title.
 *
 * A model id is split on '-' into parts, each tagged:
 *   version     (v|iter)?N(.N)*            "256", "v0.2"
 *   type        i?qN(_x)* | b?fp?(16|32)   "Q4_K_M", "F16" (upper-cased)
 *   size_label  not first; 7B, 8x7B, 1.5M, 7b1, small/mini/medium/large/xl,
 *               and only if its count is > 7/8 of the real parameter count
 *   finetune    not first; chat, instruct, vision, lora
 * Leading untagged alphabetic parts (and versions) form the basename; later
 * untagged parts are finetune; a trailing version is not part of the
 * basename. If nothing but a basename is found, the id is too ambiguous and
 * no basename is kept.
 */
#include "convert/naming.h"

#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { T_BASENAME = 1, T_SIZE = 2, T_FINETUNE = 4, T_VERSION = 8, T_TYPE = 16 };

static int matches(const char *re, const char *s)
{
    regex_t r;
    int ok;
    if (regcomp(&r, re, REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0)
        return 0;
    ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

void qf_names_size_label(uint64_t params, char *buf, size_t cap)
{
    double p = (double)params, scaled;
    char suffix, tmp[64];
    int fix, digits;

    if (p > 1e12) {
        scaled = p * 1e-12;
        suffix = 'T';
    } else if (p > 1e9) {
        scaled = p * 1e-9;
        suffix = 'B';
    } else if (p > 1e6) {
        scaled = p * 1e-6;
        suffix = 'M';
    } else {
        scaled = p * 1e-3;
        suffix = 'K';
    }
    /* digits of round(scaled) without leading zeros ("0" counts as none) */
    snprintf(tmp, sizeof tmp, "%.0f", nearbyint(scaled));
    digits = strcmp(tmp, "0") == 0 ? 0 : (int)strlen(tmp);
    fix = 2 - digits > 0 ? 2 - digits : 0;
    snprintf(buf, cap, "%.*f%c", fix, scaled, suffix);
}

/* Python's str.title() for an all-lower-case ASCII/UTF-8 word: upper-case
 * the first letter of each run of letters. */
static void title_word(char *w)
{
    int prev_alpha = 0;
    for (; *w; w++) {
        unsigned char c = (unsigned char)*w;
        if (isalpha(c)) {
            if (!prev_alpha)
                *w = (char)toupper(c);
            prev_alpha = 1;
        } else {
            prev_alpha = (c & 0x80) != 0; /* non-ASCII letters continue a word */
        }
    }
}

static int has_upper(const char *w)
{
    int cased = 0;
    for (; *w; w++) {
        if (isupper((unsigned char)*w))
            return 1;
        if (islower((unsigned char)*w))
            cased = 1;
    }
    return !cased; /* str.islower() is False when nothing is cased */
}

/* gguf-py id_to_title: '-' -> ' ', words that are all lower case and not a
 * version or number are title-cased. */
static char *id_to_title(const char *id)
{
    size_t len = strlen(id), o = 0;
    char *copy = malloc(len + 1), *out = malloc(len + 1), *tok, *save = NULL;

    if (!copy || !out) {
        free(copy);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i <= len; i++)
        copy[i] = id[i] == '-' ? ' ' : id[i];
    for (tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
        if (!has_upper(tok) && !matches("^(v[0-9]+(\\.[0-9]+)*|[0-9].*)$", tok))
            title_word(tok);
        if (o)
            out[o++] = ' ';
        memcpy(out + o, tok, strlen(tok));
        o += strlen(tok);
    }
    out[o] = '\0';
    free(copy);
    return out;
}

/* Join parts whose tags include `want` (and exclude `exclude`) with '-'. */
static char *join(char **parts, const int *tags, int n, int want, int exclude, int dedupe)
{
    size_t len = 0, o = 0;
    char *out;
    int i, j;

    for (i = 0; i < n; i++)
        len += strlen(parts[i]) + 1;
    out = malloc(len + 1);
    if (!out)
        return NULL;
    for (i = 0; i < n; i++) {
        int dup = 0;
        if (!(tags[i] & want) || (tags[i] & exclude))
            continue;
        for (j = 0; dedupe && j < i; j++)
            if ((tags[j] & want) && !(tags[j] & exclude) && strcmp(parts[j], parts[i]) == 0)
                dup = 1;
        if (dup)
            continue;
        if (o)
            out[o++] = '-';
        memcpy(out + o, parts[i], strlen(parts[i]));
        o += strlen(parts[i]);
    }
    out[o] = '\0';
    if (o == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int set_if_null(char **field, char *value)
{
    if (*field || !value) {
        free(value);
        return 0;
    }
    *field = value;
    return 0;
}

int qf_names_from_id(qf_names *n, const char *model_id, uint64_t total_params)
{
    char *copy = NULL, *full, *org = NULL, **parts = NULL, *tok, *save = NULL;
    int *tags = NULL, np = 0, i, at_start = 1, rc = QF_ENOMEM;
    char *basename = NULL, *size = NULL, *finetune = NULL, *version = NULL;

    if (!model_id || !*model_id)
        return 0;
    if (strchr(model_id, ' ')) /* a plain sentence: just a name */
        return set_if_null(&n->name, strdup(model_id)), 0;
    copy = strdup(model_id);
    if (!copy)
        goto done;
    full = copy;
    if ((tok = strchr(copy, '/')) != NULL) {
        *tok = '\0';
        org = copy;
        full = tok + 1;
        if (org[0] == '.' || org[0] == '\0')
            org = NULL;
    }
    /* parts, each with room to grow by one character (size normalization) */
    parts = calloc(strlen(full) + 1, sizeof *parts);
    tags = calloc(strlen(full) + 1, sizeof *tags);
    if (!parts || !tags)
        goto done;
    {
        char *names = strdup(full);
        if (!names)
            goto done;
        for (tok = strtok_r(names, "-", &save); tok; tok = strtok_r(NULL, "-", &save)) {
            parts[np] = malloc(strlen(tok) + 2);
            if (!parts[np]) {
                free(names);
                goto done;
            }
            strcpy(parts[np++], tok);
        }
        free(names);
    }
    for (i = 0; i < np; i++) {
        char *p = parts[i];
        if (matches("^(v|iter)?[0-9]+([.][0-9]+)*$", p)) {
            tags[i] |= T_VERSION;
        } else if (matches("^(i?q[0-9](_[A-Za-z0-9_])*|b?fp?(16|32))$", p)) {
            tags[i] |= T_TYPE;
            for (char *c = p; *c; c++)
                *c = (char)toupper((unsigned char)*c);
        } else if (i > 0 &&
                   matches("^(([a]|[0-9]+[x])?[0-9]+([._][0-9]+)?[kmbt][0-9]?|small|mini|medium|large|x?xl)$",
                           p)) {
            char buf[256];
            size_t len = strlen(p);
            if (len < sizeof buf - 2) {
                /* normalize a copy; keep it only if it is used as the label */
                char *sfxp, *end;
                double v;
                int k;
                strcpy(buf, p);
                for (char *c = buf; *c; c++)
                    if (*c == '_')
                        *c = '.';
                if (isdigit((unsigned char)buf[len - 1]) && len >= 2) {
                    char a = buf[len - 2], b = buf[len - 1];
                    buf[len - 2] = '.';
                    buf[len - 1] = b;
                    buf[len] = a;
                    buf[len + 1] = '\0';
                    len++;
                }
                if (len > 1 && isdigit((unsigned char)buf[len - 2]) && strchr("kmbt", buf[len - 1]))
                    buf[len - 1] = (char)toupper((unsigned char)buf[len - 1]);
                sfxp = strchr(" KMBT", buf[len - 1]);
                k = sfxp && buf[len - 1] ? (int)(sfxp - " KMBT") : -1;
                buf[len - 1] = '\0';
                v = strtod(buf, &end);
                if (len > 1 && *end == '\0' && end != buf && k >= 0) {
                    double label = v * pow(1000.0, (double)k);
                    if (label > (double)total_params * (7.0 / 8.0)) {
                        tags[i] |= T_SIZE;
                        buf[len - 1] = " KMBT"[k];
                        strcpy(p, buf);
                    }
                } else if (len > 1 && *end == '\0' && end != buf && k < 0) {
                    /* Python: float(x) * 1000 ** -1 — a tiny label, never > 7/8 of a model */
                }
            }
        } else if (i > 0 && matches("^(chat|instruct|vision|lora)$", p)) {
            tags[i] |= T_FINETUNE;
            if (strcasecmp(p, "lora") == 0)
                strcpy(p, "LoRA");
        }
    }
    for (i = 0; i < np; i++) {
        if (at_start && ((tags[i] == 0 && isalpha((unsigned char)parts[i][0])) || (tags[i] & T_VERSION))) {
            tags[i] |= T_BASENAME;
        } else {
            at_start = 0;
            if (tags[i] == 0)
                tags[i] |= T_FINETUNE;
        }
    }
    for (i = np - 1; i >= 0; i--) {
        if ((tags[i] & T_BASENAME) && tags[i] != T_BASENAME)
            tags[i] &= ~T_BASENAME;
        else
            break;
    }
    basename = join(parts, tags, np, T_BASENAME, 0, 0);
    size = join(parts, tags, np, T_SIZE, 0, 1);
    finetune = join(parts, tags, np, T_FINETUNE, 0, 0);
    version = join(parts, tags, np, T_VERSION, T_BASENAME, 0);
    if (!size && !finetune && !version) {
        free(basename);
        basename = NULL;
    }
    set_if_null(&n->name, id_to_title(full));
    if (org)
        set_if_null(&n->organization, id_to_title(org));
    set_if_null(&n->basename, basename);
    set_if_null(&n->finetune, finetune);
    set_if_null(&n->version, version);
    set_if_null(&n->size_label, size);
    basename = finetune = version = size = NULL;
    rc = 0;
done:
    for (i = 0; i < np; i++)
        free(parts[i]);
    free(parts);
    free(tags);
    free(copy);
    return rc;
}

void qf_names_free(qf_names *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->organization);
    free(n->basename);
    free(n->finetune);
    free(n->version);
    free(n->size_label);
    memset(n, 0, sizeof *n);
}
