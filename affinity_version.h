/* Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 */

/*
 * affinity_version.h: the version mod_affinity logs at startup (AFF0020).
 *
 * configure passes AC_INIT's version as -DAFFINITY_VERSION; the fallback
 * below is for the bare `apxs -c` build.  t/unit/version.pl fails unless it,
 * configure.ac and debian/changelog all say the same version.
 */

#ifndef AFFINITY_VERSION_H
#define AFFINITY_VERSION_H

#ifndef AFFINITY_VERSION
#define AFFINITY_VERSION "0.1.0"
#endif

#endif /* AFFINITY_VERSION_H */
