#include "gc_util.h"
TEST(placeholder) { CHECK(1); }
