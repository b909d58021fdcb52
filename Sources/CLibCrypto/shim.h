// OpenSSL's libcrypto, for SHA-256 (Debian: libssl-dev). Its digests use the CPU's SHA
// extensions where present; a system library adds nothing to build time.
#include <openssl/evp.h>
