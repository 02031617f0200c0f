/*
 * convert/naming.h - the general.* naming keys llama.cpp's converter derives
 * from a model id ("org/Model-Name-7B-Instruct-v0.2") and the parameter
 * count: name, organization, basename, finetune, version, size label.
 */
#ifndef QF_NAMING_H
#define QF_NAMING_H

#include <stddef.h>
#include <stdint.h>

#include "formats/error.h"

/* Each field NULL when not derived; owned by the struct (qf_names_free). */
typedef struct qf_names {
    char *name;         /* general.name: "Tiny Llama 256" */
    char *organization; /* general.organization */
    char *basename;     /* general.basename: "tiny-llama" */
    char *finetune;     /* general.finetune: "Instruct" */
    char *version;      /* general.version: "v0.2" */
    char *size_label;   /* general.size_label: "7B" */
} qf_names;

/*
 * Fill the fields of `n` that are still NULL from `model_id` (a folder name
 * or an "org/name" id), the way gguf-py's Metadata heuristics do; total_params
 * decides whether a size-like part ("7B") is the model's size. Returns 0 or
 * QF_ENOMEM.
 */
int qf_names_from_id(qf_names *n, const char *model_id, uint64_t total_params);

/* "1.8M", "260K", "7.2B": the size label llama.cpp derives from a count. */
void qf_names_size_label(uint64_t params, char *buf, size_t cap);

void qf_names_free(qf_names *n);

#endif /* QF_NAMING_H */
