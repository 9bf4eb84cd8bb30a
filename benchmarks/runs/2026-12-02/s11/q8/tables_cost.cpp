#include <time.h>
#include <cstdio>
#include <vector>
#include "quantized_avx512.cpp"
using namespace fastopt;
int main(){ std::vector<float> m(256); FILE*f=fopen("/tmp/q8tab/map_s.bin","rb"); fread(m.data(),4,256,f); fclose(f);
 CodeLines c; alignas(64) uint8_t pl[1024]; timespec a,b; clock_gettime(CLOCK_MONOTONIC,&a);
 int ok=0; for(int i=0;i<2000;i++){ ok+=code_lines_of(m.data(),&c); map_byte_planes(m.data(),pl);} clock_gettime(CLOCK_MONOTONIC,&b);
 printf("ok %d, %.2f us per map (lines + planes)\n", ok, ((b.tv_sec-a.tv_sec)*1e9+(b.tv_nsec-a.tv_nsec))/2000/1e3); }
