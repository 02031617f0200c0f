#include "tools/model_open.h"

#include "formats/weights.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int qf_tool_sniff(const char *path, qf_err *err)
{
    struct stat st;
    unsigned char head[9];
    ssize_t n;
    int fd;

    if (stat(path, &st) != 0)
        return qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode) || ends_with(path, ".json"))
        return QF_KIND_WEIGHTS;
    if (ends_with(path, ".gguf"))
        return QF_KIND_GGUF;
    if (ends_with(path, ".qfm"))
        return QF_KIND_QFM;
    if (ends_with(path, ".safetensors") || qf_weights_is_pytorch(path))
        return QF_KIND_WEIGHTS;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qf_err_set(err, QF_EIO, "%s: %s", path, strerror(errno));
    n = read(fd, head, sizeof head);
    close(fd);
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0)
        return QF_KIND_GGUF;
    if (n >= 4 && memcmp(head, "QFM", 4) == 0)
        return QF_KIND_QFM;
    if (n == 9 && head[8] == '{')
        return QF_KIND_WEIGHTS;
    return qf_err_set(err, QF_EFORMAT, "%s: not a GGUF, safetensors or PyTorch file", path);
}
