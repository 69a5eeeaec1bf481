from cffi import FFI
ffibuilder = FFI()
ffibuilder.cdef("int kemi_probe(int);")
ffibuilder.set_source("pykemi.runtime._kemi_dispatch", "int kemi_probe(int x){return x+1;}")
