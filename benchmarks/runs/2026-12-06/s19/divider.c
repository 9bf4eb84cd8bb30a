// Throughput of vdivps / vsqrtps / vfmadd (zmm, 8 independent chains) and vdivps ymm
// (4 chains), ns per instruction:  gcc -O2 -mavx512f divider.c -o /tmp/divider && /tmp/divider
// kinds: 0 vdivps zmm, 1 vsqrtps zmm, 2 vfmadd zmm, 3 vdivps ymm
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec*1e-9;}
#define OP8(OP) a0=OP(a0);a1=OP(a1);a2=OP(a2);a3=OP(a3);a4=OP(a4);a5=OP(a5);a6=OP(a6);a7=OP(a7);
int main(void){
  __m512 d = _mm512_set1_ps(1.0000001f), e = _mm512_set1_ps(0.9999999f);
  long N=20000000;
  for (int kind=0; kind<4; kind++){
    __m512 a0=_mm512_set1_ps(1),a1=_mm512_set1_ps(2),a2=_mm512_set1_ps(3),a3=_mm512_set1_ps(4),a4=_mm512_set1_ps(5),a5=_mm512_set1_ps(6),a6=_mm512_set1_ps(7),a7=_mm512_set1_ps(8);
    double t=now();
    for(long k=0;k<N;k++){
#define DIV(x) _mm512_div_ps(x,d)
#define SQ(x) _mm512_sqrt_ps(x)
#define FMA(x) _mm512_fmadd_ps(x,d,e)
#define YDIV(x) x
      if(kind==0){OP8(DIV)} else if(kind==1){OP8(SQ)} else if (kind==2){OP8(FMA)} else {
        __m256 y0=_mm512_castps512_ps256(a0), y1=_mm512_castps512_ps256(a1), y2=_mm512_castps512_ps256(a2), y3=_mm512_castps512_ps256(a3);
        __m256 dd=_mm512_castps512_ps256(d);
        y0=_mm256_div_ps(y0,dd);y1=_mm256_div_ps(y1,dd);y2=_mm256_div_ps(y2,dd);y3=_mm256_div_ps(y3,dd);
        a0=_mm512_castps256_ps512(y0);a1=_mm512_castps256_ps512(y1);a2=_mm512_castps256_ps512(y2);a3=_mm512_castps256_ps512(y3);
      }
      __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5),"+v"(a6),"+v"(a7));
    }
    t=now()-t;
    int ops = kind==3?4:8;
    printf("%d: %.3f ns per op\n", kind, t/(N*(double)ops)*1e9);
  }
  return 0;
}
