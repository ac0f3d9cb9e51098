#include "projections/projection.h"
