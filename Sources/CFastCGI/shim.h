// libfcgi's request API (fcgiapp.h, FastCGI 1.0 developer's kit). Nothing here is variadic
// that Swift needs, so the module is the header itself.
#include <fcgiapp.h>
