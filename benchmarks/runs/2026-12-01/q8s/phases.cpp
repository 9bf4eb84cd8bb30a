// Per-phase cost of the 8-bit Adam block loop (one thread, CPU time), variants.
#include <immintrin.h>
#include <time.h>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <vector>
#include <algorithm>
#include "fastopt/optim.h"
#include "fastopt/quantize.h"
using namespace fastopt;
static double now(){timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static std::vector<char> rd(const char*f){FILE*p=fopen(f,"rb");std::vector<char>v(1<<16);v.resize(fread(v.data(),1,v.size(),p));fclose(p);return v;}
__attribute__((target("avx2"))) static void deq_gather(const uint8_t*c,float am,const float*q,float*o){
  __m256 s=_mm256_set1_ps(am);
  for(int i=0;i<256;i+=8){__m256i idx=_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(c+i)));
    _mm256_storeu_ps(o+i,_mm256_mul_ps(_mm256_i32gather_ps(q,idx,4),s));}}
__attribute__((target("avx2"))) static void deq_insert(const uint8_t*c,float am,const float*q,float*o){
  __m256 s=_mm256_set1_ps(am);
  for(int i=0;i<256;i+=8){uint64_t w; memcpy(&w,c+i,8);
    __m128 lo=_mm_load_ss(q+(w&255)); lo=_mm_insert_ps(lo,_mm_load_ss(q+((w>>8)&255)),0x10);
    lo=_mm_insert_ps(lo,_mm_load_ss(q+((w>>16)&255)),0x20); lo=_mm_insert_ps(lo,_mm_load_ss(q+((w>>24)&255)),0x30);
    __m128 hi=_mm_load_ss(q+((w>>32)&255)); hi=_mm_insert_ps(hi,_mm_load_ss(q+((w>>40)&255)),0x10);
    hi=_mm_insert_ps(hi,_mm_load_ss(q+((w>>48)&255)),0x20); hi=_mm_insert_ps(hi,_mm_load_ss(q+((w>>56)&255)),0x30);
    _mm256_storeu_ps(o+i,_mm256_mul_ps(_mm256_set_m128(hi,lo),s));}}
__attribute__((target("avx2"))) static void deq_scalar(const uint8_t*c,float am,const float*q,float*o){
  float t[256];
  for(int i=0;i<256;i++) t[i]=q[c[i]];   // may vectorize to gathers... check
  __m256 s=_mm256_set1_ps(am);
  for(int i=0;i<256;i+=8) _mm256_storeu_ps(o+i,_mm256_mul_ps(_mm256_loadu_ps(t+i),s));}
template<bool Signed, bool Recip, bool Ins=false>
__attribute__((target("avx2"))) static void codes(const float*x,float am,const int*lut,uint8_t*c){
  constexpr int bits=kLutBits<Signed>,shift=23-bits,half=kLutBinades<<bits;
  const __m256 scale=_mm256_set1_ps(Recip?1.0f/am:am);const __m256i zero=_mm256_setzero_si256();
  for(int j=0;j<256;j+=8){
    const __m256 xv=Recip?_mm256_mul_ps(_mm256_loadu_ps(x+j),scale):_mm256_div_ps(_mm256_loadu_ps(x+j),scale);
    const __m256i u=_mm256_castps_si256(xv);const __m256i a=_mm256_and_si256(u,_mm256_set1_epi32(0x7fffffff));
    const __m256i neg=_mm256_srai_epi32(u,31);
    __m256i b=_mm256_sub_epi32(_mm256_srli_epi32(a,shift),_mm256_set1_epi32(kLutE0<<bits));
    b=_mm256_min_epi32(_mm256_max_epi32(b,zero),_mm256_set1_epi32(half-1));
    if(Signed) b=_mm256_add_epi32(b,_mm256_and_si256(neg,_mm256_set1_epi32(half)));
    __m256i e;
    if(Ins){ alignas(32) int ix[8]; _mm256_store_si256((__m256i*)ix,b);
      __m128i lo=_mm_cvtsi32_si128(lut[ix[0]]); lo=_mm_insert_epi32(lo,lut[ix[1]],1); lo=_mm_insert_epi32(lo,lut[ix[2]],2); lo=_mm_insert_epi32(lo,lut[ix[3]],3);
      __m128i hi=_mm_cvtsi32_si128(lut[ix[4]]); hi=_mm_insert_epi32(hi,lut[ix[5]],1); hi=_mm_insert_epi32(hi,lut[ix[6]],2); hi=_mm_insert_epi32(hi,lut[ix[7]],3);
      e=_mm256_set_m128i(hi,lo);} else e=_mm256_i32gather_epi32(lut,b,4);
    const __m256i low=_mm256_and_si256(a,_mm256_set1_epi32((1<<shift)-1));
    const __m256i l=_mm256_sub_epi32(_mm256_xor_si256(low,neg),neg);
    const __m256i up=_mm256_cmpgt_epi32(l,_mm256_srai_epi32(e,8));
    __m256i code=_mm256_sub_epi32(_mm256_and_si256(e,_mm256_set1_epi32(255)),up);
    __m256i keep=_mm256_castps_si256(_mm256_cmp_ps(xv,xv,_CMP_ORD_Q)); if(!Signed) keep=_mm256_andnot_si256(neg,keep);
    code=_mm256_and_si256(code,keep);
    const __m128i w=_mm_packus_epi32(_mm256_castsi256_si128(code),_mm256_extracti128_si256(code,1));
    _mm_storel_epi64((__m128i*)(c+j),_mm_packus_epi16(w,w));}}
__attribute__((target("avx2"))) static float bmax(const float*x){int lane[8]={0};
  for(int i=0;i<256;i+=8) for(int k=0;k<8;k++) lane[k]=magnitude_max(lane[k],x[i+k]);
  int m=0; for(int k=0;k<8;k++) m=std::max(m,lane[k]); float a; memcpy(&a,&m,4); return a;}
__attribute__((target("avx2"))) static void upd(float*__restrict p,const float*__restrict g,float*__restrict m,float*__restrict v,const AdamScalars<float>&s){
  float u=0; for(int i=0;i<256;i++) adam_element<kNoDecay,false>(p[i],g[i],m[i],v[i],u,s);}
int main(int argc,char**argv){
  size_t n=argc>1?atol(argv[1]):10000000; size_t nb=n/256;
  auto ms=rd("map_s.bin"),mu=rd("map_u.bin"),ls=rd("lut_s.bin"),lu=rd("lut_u.bin");
  const float*qs=(float*)ms.data(),*qu=(float*)mu.data();const int*Ls=(int*)ls.data(),*Lu=(int*)lu.data();
  std::vector<float> p(n),g(n),ma(nb),va(nb); std::vector<uint8_t> mc(n),vc(n);
  srand(1); for(size_t i=0;i<n;i++){p[i]=rand()/(float)RAND_MAX-0.5f; g[i]=(rand()/(float)RAND_MAX-0.5f)*1e-2f; mc[i]=rand()&255; vc[i]=128+(rand()&127);}
  for(size_t b=0;b<nb;b++){ma[b]=1e-3f*(1+(b%7));va[b]=1e-5f*(1+(b%5));}
  AdamScalars<float> s{0.9f,0.1f,0.999f,0.001f,1e-8f,0,1,1e-3f,0.1f,1};
  alignas(64) float mb[256],vb[256];
  auto run=[&](const char*name,int dq,bool recip,int which){ // which: 0 all, 1 deq only,2 upd only,3 absmax only,4 codes only
    double best=1e9; for(int r=0;r<5;r++){ double t0=now();
    for(size_t b=0;b<nb;b++){ size_t o=b*256;
      if(which==0||which==1){ if(dq==0){deq_gather(&mc[o],ma[b],qs,mb);deq_gather(&vc[o],va[b],qu,vb);} else if(dq==1||dq==3){deq_insert(&mc[o],ma[b],qs,mb);deq_insert(&vc[o],va[b],qu,vb);} else {deq_scalar(&mc[o],ma[b],qs,mb);deq_scalar(&vc[o],va[b],qu,vb);} }
      if(which==0||which==2) upd(&p[o],&g[o],mb,vb,s);
      float am1=1,am2=1; if(which==0||which==3){am1=bmax(mb);am2=bmax(vb); if(which==3){ma[b]=am1+ma[b]*0;}}
      if(which==0||which==4){ if(am1==0)am1=1; if(am2==0)am2=1;
        if(which==4&&dq==1){codes<true,true,true>(mb,am1,Ls,&mc[o]);codes<false,true,true>(vb,am2,Lu,&vc[o]);} else if(which==0&&dq==1){codes<true,true,true>(mb,am1,Ls,&mc[o]);codes<false,true,true>(vb,am2,Lu,&vc[o]);} else if(recip){codes<true,true>(mb,am1,Ls,&mc[o]);codes<false,true>(vb,am2,Lu,&vc[o]);} else {codes<true,false>(mb,am1,Ls,&mc[o]);codes<false,false>(vb,am2,Lu,&vc[o]);} }
      if(which==0){ma[b]=am1;va[b]=am2;}
    } best=std::min(best,now()-t0);} printf("%-34s %8.2f ms  %.3f ns/elem\n",name,best*1e3,best*1e9/n);};
  run("all: gather deq, div codes",0,false,0);
  run("all: gather deq, recip codes",0,true,0);
  run("all: insert deq+lut, recip codes",1,true,0);
  run("all: scalar deq, recip codes",2,true,0);
  run("all: insert deq, recip, gather lut",3,true,0);
  run("phase: deq gather (2 states)",0,true,1);
  run("phase: deq insert (2 states)",1,true,1);
  run("phase: deq scalar (2 states)",2,true,1);
  run("phase: update (adam_element)",0,true,2);
  run("phase: absmax (2 states)",0,true,3);
  run("phase: codes div (2 states)",0,false,4);
  run("phase: codes recip (2 states)",0,true,4);
  run("phase: codes recip insert-lut",1,true,4);
  for(int k=0;k<4;k++) upd(&p[0],&g[0],mb,vb,s); {double t0=now(); for(int r=0;r<40000;r++) upd(&p[0],&g[0],mb,vb,s); printf("update in L1: %.3f ns/elem\n",(now()-t0)*1e9/(40000*256.));}
}
