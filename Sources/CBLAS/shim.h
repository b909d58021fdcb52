// OpenBLAS's CBLAS interface (Debian: libopenblas-dev puts cblas.h on the multiarch path).
#include <cblas.h>
