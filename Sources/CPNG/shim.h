// libpng 1.6. duo uses its simplified API (png_image_*), which keeps libpng's
// setjmp/longjmp error path inside libpng and reports failures in png_image.message.
#include <png.h>
